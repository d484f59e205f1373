# The warehouse: a Redshift Serverless namespace and workgroup (encrypted with the
# environment's key, private, SSL required), the role Redshift assumes for COPY from
# the zone, and the loader: the bucket notifies an SQS queue of every object created
# under the clean prefix (Firehose writes no manifests), and the loader Lambda consumes
# it through an event source mapping with partial batch responses (it groups the
# objects, writes its own manifest, COPYs into staging, MERGEs on event_id, audits).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  region           = data.aws_region.current.name
  account_id       = data.aws_caller_identity.current.account_id
  read_prefixes    = [var.clean_prefix, var.manifest_prefix]
  read_object_arns = [for prefix in local.read_prefixes : "${var.bucket_arn}/${prefix}*"]
  endpoint         = aws_redshiftserverless_workgroup.this.endpoint[0]
  # The loader connects with its own database user over TLS (sslmode=require; the
  # workgroup refuses anything else through require_ssl).
  loader_dsn = {
    for key, value in {
      SLUICE_WAREHOUSE_DSN = "postgresql://${var.loader_db_user}:${urlencode(coalesce(var.loader_db_password, "-"))}@${local.endpoint.address}:${local.endpoint.port}/${var.database_name}?sslmode=require"
    } : key => value if nonsensitive(var.loader_db_password != null)
  }
}

# --- Redshift Serverless -------------------------------------------------------------

resource "aws_security_group" "warehouse" {
  name        = "${var.name}-warehouse"
  description = "Redshift Serverless workgroup: SQL clients from the Sluice workloads only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "warehouse_sql" {
  for_each = toset(var.client_security_group_ids)

  security_group_id            = aws_security_group.warehouse.id
  description                  = "Redshift SQL (TLS required by the workgroup)"
  ip_protocol                  = "tcp"
  from_port                    = 5439
  to_port                      = 5439
  referenced_security_group_id = each.value
}

data "aws_iam_policy_document" "copy_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["redshift.amazonaws.com", "redshift-serverless.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "copy" {
  name               = "${var.name}-warehouse-copy"
  description        = "Assumed by Redshift to COPY the zone's clean files and manifests"
  assume_role_policy = data.aws_iam_policy_document.copy_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "copy" {
  statement {
    sid       = "ReadCleanFilesAndManifests"
    actions   = ["s3:GetObject"]
    resources = local.read_object_arns
  }

  statement {
    sid       = "ListCleanFilesAndManifests"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in local.read_prefixes : "${prefix}*"]
    }
  }

  statement {
    sid       = "DecryptZoneObjects"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "copy" {
  name   = "copy-from-zone"
  role   = aws_iam_role.copy.id
  policy = data.aws_iam_policy_document.copy.json
}

resource "aws_redshiftserverless_namespace" "this" {
  namespace_name                   = "${var.name}-sluice"
  db_name                          = var.database_name
  admin_username                   = var.admin_username
  manage_admin_password            = true
  admin_password_secret_kms_key_id = var.kms_key_arn
  kms_key_id                       = var.kms_key_arn
  iam_roles                        = [aws_iam_role.copy.arn]
  default_iam_role_arn             = aws_iam_role.copy.arn
  log_exports                      = ["userlog", "connectionlog", "useractivitylog"]
  tags                             = var.tags
}

resource "aws_redshiftserverless_workgroup" "this" {
  workgroup_name       = "${var.name}-sluice"
  namespace_name       = aws_redshiftserverless_namespace.this.namespace_name
  base_capacity        = var.base_capacity_rpu
  subnet_ids           = var.subnet_ids
  security_group_ids   = [aws_security_group.warehouse.id]
  publicly_accessible  = false
  enhanced_vpc_routing = true
  tags                 = var.tags

  config_parameter {
    parameter_key   = "require_ssl"
    parameter_value = "true"
  }

  config_parameter {
    parameter_key   = "enable_user_activity_logging"
    parameter_value = "true"
  }
}

# --- Loader function -----------------------------------------------------------------

resource "aws_sqs_queue" "loader_dlq" {
  name                      = "${var.name}-loader-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = var.kms_key_arn
  tags                      = var.tags
}

# S3 ObjectCreated notifications of the clean prefix; after 5 receives a message that
# never loaded goes to the dead-letter queue above (the monitoring module alarms on it).
resource "aws_sqs_queue" "loads" {
  name                       = "${var.name}-loads"
  visibility_timeout_seconds = 6 * var.loader_timeout_seconds
  message_retention_seconds  = 1209600
  kms_master_key_id          = var.kms_key_arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.loader_dlq.arn
    maxReceiveCount     = 5
  })
  tags = var.tags
}

data "aws_iam_policy_document" "loads_queue" {
  statement {
    sid       = "ZoneBucketNotifications"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.loads.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [var.bucket_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "loads" {
  queue_url = aws_sqs_queue.loads.id
  policy    = data.aws_iam_policy_document.loads_queue.json
}

data "aws_iam_policy_document" "loader" {
  statement {
    sid       = "ReadCleanFilesAndManifests"
    actions   = ["s3:GetObject"]
    resources = local.read_object_arns
  }

  statement {
    sid       = "WriteManifests"
    actions   = ["s3:PutObject"]
    resources = ["${var.bucket_arn}/${var.manifest_prefix}*"]
  }

  statement {
    sid       = "ListCleanFilesAndManifests"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in local.read_prefixes : "${prefix}*"]
    }
  }

  statement {
    sid = "ConsumeLoadNotifications"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.loads.arn]
  }

  statement {
    sid       = "UseZoneKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com", "sqs.${local.region}.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = length(var.loader_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadOwnSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.loader_secret_arns
    }
  }
}

module "loader" {
  source = "../lambda"

  function_name          = "${var.name}-warehouse-loader"
  description            = "Sluice loader: COPY zone files into staging, MERGE on event_id"
  handler                = "warehouse.lambda_function.lambda_handler"
  package_path           = var.loader_package_path
  memory_mb              = var.loader_memory_mb
  timeout_seconds        = var.loader_timeout_seconds
  reserved_concurrency   = var.loader_reserved_concurrency
  environment = merge(var.loader_environment, local.loader_dsn, {
    SLUICE_WAREHOUSE_BACKEND  = "redshift"
    SLUICE_WAREHOUSE_IAM_ROLE = aws_iam_role.copy.arn
  })
  kms_key_arn            = var.kms_key_arn
  subnet_ids             = var.subnet_ids
  security_group_ids     = var.client_security_group_ids
  policy_json            = data.aws_iam_policy_document.loader.json
  dead_letter_target_arn = aws_sqs_queue.loader_dlq.arn
  log_retention_days     = var.log_retention_days
  tags                   = var.tags
}

resource "aws_lambda_event_source_mapping" "loads" {
  event_source_arn                   = aws_sqs_queue.loads.arn
  function_name                      = module.loader.function_arn
  batch_size                         = 10
  maximum_batching_window_in_seconds = 5
  function_response_types            = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.loader_reserved_concurrency
  }
}

resource "aws_s3_bucket_notification" "zone" {
  bucket = var.bucket_name

  queue {
    id            = "sluice-clean-objects"
    queue_arn     = aws_sqs_queue.loads.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.clean_prefix
    filter_suffix = var.loader_trigger_suffix
  }

  depends_on = [aws_sqs_queue_policy.loads]
}
