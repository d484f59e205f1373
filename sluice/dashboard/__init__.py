"""``sluice dashboard``: a live local page of lag, throughput, errors and reconcile.

It sits on the top floor beside the CLI and the demo: it imports the packages below it
(lag and reconcile data functions, the zone) and nothing imports it.
"""
