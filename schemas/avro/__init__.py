"""The Avro schema files of the event contract (``*.avsc``), shipped as package data."""
