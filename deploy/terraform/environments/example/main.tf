# An example environment wiring the whole Sluice path on AWS:
#   client -> HTTP API -> ingest Lambda -> MSK topic | Kinesis stream
#          -> Firehose (transform Lambda) -> S3 zone -> loader Lambda -> Redshift Serverless
#          -> consumer groups and zone loader on ECS (lease tables, DLQ) ; alarms -> SNS
# Build the Lambda artifacts first: `sluice package --out dist/ --function all`.

data "aws_caller_identity" "current" {}

locals {
  name        = "sluice-${var.environment}"
  is_kafka    = var.stream_backend == "kafka"
  event_types = ["financial-transaction", "insurance-claim"]

  # One name serves as Kafka topic and Kinesis stream (SLUICE_STREAM_*).
  stream_names = { for event_type in local.event_types : event_type => "${local.name}-${event_type}" }
  dlq_name     = "${local.name}-dlq"

  schema_registry_name = "${local.name}-schemas"
  bucket_name  = coalesce(var.bucket_name, "${local.name}-zone-${data.aws_caller_identity.current.account_id}")

  artifacts = {
    api       = "${var.artifacts_dir}/sluice-api.zip"
    transform = "${var.artifacts_dir}/sluice-transform.zip"
    loader    = "${var.artifacts_dir}/sluice-loader.zip"
  }

  # Settings every component shares (sluice.config); no secret values here.
  common_env = {
    SLUICE_STREAM_BACKEND               = var.stream_backend
    SLUICE_STREAM_FINANCIAL_TRANSACTION = local.stream_names["financial-transaction"]
    SLUICE_STREAM_INSURANCE_CLAIM       = local.stream_names["insurance-claim"]
    SLUICE_STREAM_DLQ                   = local.dlq_name
    SLUICE_AWS_REGION                   = var.region
    SLUICE_S3_BUCKET                    = local.bucket_name
    SLUICE_S3_RAW_PREFIX                = module.storage.prefixes.raw
    SLUICE_S3_CLEAN_PREFIX              = module.storage.prefixes.clean
    SLUICE_S3_ERROR_PREFIX              = module.storage.prefixes.errors
    SLUICE_S3_MANIFEST_PREFIX           = module.storage.prefixes.manifests
    SLUICE_SCHEMA_REGISTRY              = var.schema_registry
    SLUICE_SCHEMA_REGISTRY_NAME         = local.schema_registry_name
  }

  # MSK with IAM authentication: SASL over TLS with an OAUTHBEARER token signed by the
  # function's role. Empty on Kinesis.
  kafka_env = {
    for key, value in {
      SLUICE_KAFKA_BOOTSTRAP_SERVERS  = module.streaming.kafka_bootstrap_brokers
      SLUICE_KAFKA_SECURITY_PROTOCOL  = "SASL_SSL"
      SLUICE_KAFKA_SASL_MECHANISM     = "OAUTHBEARER"
      SLUICE_KAFKA_OAUTH_PROVIDER     = "msk-iam"
      SLUICE_KAFKA_MSK_REGION         = var.region
      SLUICE_KAFKA_ENABLE_IDEMPOTENCE = "true"
    } : key => value if local.is_kafka
  }

  # What the ECS workers (consumer groups, zone loader) and operators run with.
  worker_env = merge(local.common_env, local.kafka_env, {
    SLUICE_CONSUMER_EMF           = "true"
    SLUICE_CONSUMER_EMF_NAMESPACE = var.custom_metrics.namespace
    SLUICE_WAREHOUSE_BACKEND      = "redshift"
    SLUICE_WAREHOUSE_IAM_ROLE     = module.warehouse.copy_role_arn
  })

  # Secret values (sensitive variables) reach only the functions that need them; whether
  # one is set is not itself secret.
  pii_env      = { for key, value in { SLUICE_PII_HMAC_KEY = coalesce(var.pii_hmac_key, "-") } : key => value if nonsensitive(var.pii_hmac_key != null) }
  api_keys_env = { for key, value in { SLUICE_API_KEYS_JSON = coalesce(var.api_keys_json, "-") } : key => value if nonsensitive(var.api_keys_json != null) }
}

module "kms" {
  source = "../../modules/kms"

  name = local.name
}

module "network" {
  source = "../../modules/network"

  name                 = local.name
  cidr_block           = var.vpc_cidr_block
  availability_zones   = var.availability_zones
  private_subnet_cidrs = var.private_subnet_cidrs
  kms_key_arn          = module.kms.key_arn
}

module "storage" {
  source = "../../modules/storage"

  bucket_name    = local.bucket_name
  kms_key_arn    = module.kms.key_arn
  lifecycle_days = var.zone_lifecycle_days
}

module "streaming" {
  source = "../../modules/streaming"

  name                      = local.name
  backend                   = var.stream_backend
  stream_names              = local.stream_names
  kms_key_arn               = module.kms.key_arn
  retention_hours           = var.stream_retention_hours
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.network.workload_security_group_id]
  kafka_broker_count        = var.kafka_broker_count
  kafka_instance_type       = var.kafka_instance_type
  kafka_partitions          = var.kafka_partitions
  kinesis_stream_mode       = var.kinesis_stream_mode
  kinesis_shard_count       = var.kinesis_shard_count
}

module "consumers" {
  source = "../../modules/consumers"

  name                   = local.name
  backend                = var.stream_backend
  consumer_groups        = var.consumer_groups
  consumed_streams       = values(local.stream_names)
  dlq_name               = local.dlq_name
  kinesis_stream_arns    = values(module.streaming.kinesis_stream_arns)
  kafka_cluster_arn      = module.streaming.msk_cluster_arn
  kafka_topic_arns       = values(module.streaming.kafka_topic_arns)
  kafka_topic_arn_prefix = module.streaming.kafka_topic_arn_prefix
  kafka_group_arn_prefix = module.streaming.kafka_group_arn_prefix
  metric_namespace       = var.custom_metrics.namespace
  kms_key_arn            = module.kms.key_arn
}

module "api" {
  source = "../../modules/api"

  name                   = local.name
  package_path           = local.artifacts.api
  environment            = merge(local.common_env, local.kafka_env, local.pii_env, local.api_keys_env, { SLUICE_API_ACCEPTED_LOG = "log" })
  auth_mode              = var.api_auth_mode
  jwt_issuer             = var.jwt_issuer
  jwt_audience           = var.jwt_audience
  throttling_rate_limit  = var.api_throttling_rate_limit
  throttling_burst_limit = var.api_throttling_burst_limit
  kinesis_stream_arns    = values(module.streaming.kinesis_stream_arns)
  kafka_cluster_arn      = module.streaming.msk_cluster_arn
  kafka_topic_arns       = values(module.streaming.kafka_topic_arns)
  kms_key_arn            = module.kms.key_arn
  subnet_ids             = module.network.private_subnet_ids
  security_group_ids     = [module.network.workload_security_group_id]
}

module "delivery" {
  source = "../../modules/delivery"

  name                       = local.name
  backend                    = var.stream_backend
  stream_names               = local.stream_names
  kinesis_stream_arns        = module.streaming.kinesis_stream_arns
  kafka_cluster_arn          = module.streaming.msk_cluster_arn
  kafka_topic_arns           = module.streaming.kafka_topic_arns
  bucket_arn                 = module.storage.bucket_arn
  raw_prefix                 = module.storage.prefixes.raw
  clean_prefix               = module.storage.prefixes.clean
  error_prefix               = module.storage.prefixes.errors
  raw_backup_enabled         = var.raw_backup_enabled
  buffering_size_mb          = var.firehose_buffering_size_mb
  buffering_interval_seconds = var.firehose_buffering_interval_seconds
  transform_package_path     = local.artifacts.transform
  transform_environment      = merge(local.common_env, local.pii_env)
  kms_key_arn                = module.kms.key_arn
  subnet_ids                 = module.network.private_subnet_ids
  security_group_ids         = [module.network.workload_security_group_id]
}

# Glue Schema Registry (SLUICE_SCHEMA_REGISTRY=glue): the schemas with their first
# version; `sluice schemas register --registry glue` adds the later ones in order.
module "schema_registry" {
  source = "../../modules/schema_registry"
  count  = var.schema_registry == "glue" ? 1 : 0

  name = local.schema_registry_name
  schemas = {
    for event_type, stream in local.stream_names :
    stream => file("${path.module}/../../../../schemas/avro/${event_type}.v1.avsc")
  }
  reader_role_arns = [
    module.api.function_role_arn,
    module.delivery.transform_role_arn,
    module.consumers.consumer_role_arn,
  ]
  registrar_role_arn = var.schema_registrar_role_arn
}

module "warehouse" {
  source = "../../modules/warehouse"

  name                      = local.name
  base_capacity_rpu         = var.warehouse_base_capacity_rpu
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.network.workload_security_group_id]
  bucket_name               = module.storage.bucket_name
  bucket_arn                = module.storage.bucket_arn
  clean_prefix              = module.storage.prefixes.clean
  manifest_prefix           = module.storage.prefixes.manifests
  loader_package_path       = local.artifacts.loader
  loader_environment        = local.common_env
  loader_db_password        = var.loader_db_password
  kms_key_arn               = module.kms.key_arn
}

# The DSN of the consumers' and the zone loader's database user
# (postgresql://user:password@endpoint:5439/sluice?sslmode=require). Terraform creates
# the secret; its value is put by the operator (docs/deploy.md), never in the state.
resource "aws_secretsmanager_secret" "warehouse_dsn" {
  #checkov:skip=CKV2_AWS_57:The value is a database user's DSN; its password is rotated with the warehouse user procedure (docs/deploy.md), not by a rotation Lambda.
  name                    = "${local.name}/warehouse-dsn"
  description             = "SLUICE_WAREHOUSE_DSN of the Sluice workers"
  kms_key_id              = module.kms.key_arn
  recovery_window_in_days = 30
}

module "workers" {
  source = "../../modules/workers"

  name                     = local.name
  image_tag                = var.image_tag
  consumer_groups          = var.consumer_groups
  consumer_tasks_per_group = var.consumer_tasks_per_group
  consumer_role_arn        = module.consumers.consumer_role_arn
  environment              = local.worker_env
  secret_arns              = { SLUICE_WAREHOUSE_DSN = aws_secretsmanager_secret.warehouse_dsn.arn }
  bucket_arn               = module.storage.bucket_arn
  clean_prefix             = module.storage.prefixes.clean
  manifest_prefix          = module.storage.prefixes.manifests
  kms_key_arn              = module.kms.key_arn
  subnet_ids               = module.network.private_subnet_ids
  security_group_ids       = [module.network.workload_security_group_id]
}

module "monitoring" {
  source = "../../modules/monitoring"

  name                    = local.name
  backend                 = var.stream_backend
  custom_metrics          = var.custom_metrics
  thresholds              = var.alarm_thresholds
  kinesis_stream_names    = local.is_kafka ? {} : local.stream_names
  dlq_kinesis_stream_name = module.consumers.dlq_kinesis_stream_name
  dlq_name                = module.consumers.dlq_name
  msk_cluster_name        = module.streaming.msk_cluster_name
  zone_bucket_name        = module.storage.bucket_name
  error_metrics_filter_id = module.storage.error_metrics_filter_id
  delivery_stream_names   = module.delivery.delivery_stream_names
  api_id                  = module.api.api_id
  api_stage               = module.api.stage_name
  loader_dlq_name         = module.warehouse.loader_dlq_name
  workers_cluster_name    = module.workers.cluster_name
  worker_service_names    = module.workers.service_names
  alarm_emails            = var.alarm_emails
  kms_key_arn             = module.kms.key_arn

  function_names = {
    api       = module.api.function_name
    transform = module.delivery.transform_function_name
    loader    = module.warehouse.loader_function_name
  }
}
