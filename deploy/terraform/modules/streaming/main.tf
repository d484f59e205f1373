# The event streams: one Kafka topic per event type on Amazon MSK, or one Kinesis data
# stream per event type. Exactly one backend exists per environment (`backend`); the
# other's resources have count = 0. The same name serves as topic and stream name
# (SLUICE_STREAM_FINANCIAL_TRANSACTION, SLUICE_STREAM_INSURANCE_CLAIM).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  is_kafka   = var.backend == "kafka"
  is_kinesis = var.backend == "kinesis"
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id

  cluster_arn = local.is_kafka ? aws_msk_cluster.this[0].arn : null
  # arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid> -> .../topic/<name>/<uuid>/<topic>
  topic_arn_prefix = local.is_kafka ? replace(local.cluster_arn, ":cluster/", ":topic/") : null
  group_arn_prefix = local.is_kafka ? replace(local.cluster_arn, ":cluster/", ":group/") : null
}

# --- Amazon MSK ----------------------------------------------------------------------

resource "aws_security_group" "msk" {
  count = local.is_kafka ? 1 : 0

  name        = "${var.name}-msk"
  description = "MSK brokers: IAM-authenticated TLS clients from the Sluice workloads only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

# Keyed by the caller's static labels: the group ids may be known only after apply.
resource "aws_vpc_security_group_ingress_rule" "msk_iam_tls" {
  for_each = local.is_kafka ? var.client_security_groups : {}

  security_group_id            = aws_security_group.msk[0].id
  description                  = "Kafka clients, SASL/IAM over TLS"
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
  referenced_security_group_id = each.value
}

resource "aws_cloudwatch_log_group" "msk" {
  count = local.is_kafka ? 1 : 0

  name              = "/sluice/${var.name}/msk-brokers"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_msk_configuration" "this" {
  count = local.is_kafka ? 1 : 0

  name           = "${var.name}-sluice"
  kafka_versions = [var.kafka_version]
  # Topics are created explicitly with their partition count; writes need two in-sync
  # replicas so that acks=all survives the loss of one broker.
  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=3
    min.insync.replicas=2
    num.partitions=${var.kafka_partitions}
    unclean.leader.election.enable=false
    log.retention.hours=${var.retention_hours}
  PROPERTIES
}

resource "aws_msk_cluster" "this" {
  count = local.is_kafka ? 1 : 0

  cluster_name           = "${var.name}-sluice"
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.kafka_broker_count
  enhanced_monitoring    = "PER_TOPIC_PER_PARTITION"
  tags                   = var.tags

  broker_node_group_info {
    instance_type   = var.kafka_instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.msk[0].id]

    storage_info {
      ebs_storage_info {
        volume_size = var.kafka_volume_size_gb
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
      # Multi-VPC private connectivity: how Firehose reaches the cluster as a source.
      vpc_connectivity {
        client_authentication {
          sasl {
            iam = true
          }
        }
      }
    }
  }

  client_authentication {
    unauthenticated = false
    sasl {
      iam = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = var.kms_key_arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this[0].arn
    revision = aws_msk_configuration.this[0].latest_revision
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }
}

# Firehose reads the topics through a managed VPC connection; the cluster policy lets
# the Firehose service create it and nothing more.
resource "aws_msk_cluster_policy" "firehose" {
  count = local.is_kafka ? 1 : 0

  cluster_arn = aws_msk_cluster.this[0].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "FirehoseCreatesVpcConnection"
      Effect    = "Allow"
      Principal = { Service = "firehose.amazonaws.com" }
      Action = [
        "kafka:CreateVpcConnection",
        "kafka:GetBootstrapBrokers",
        "kafka:DescribeCluster",
        "kafka:DescribeClusterV2",
      ]
      Resource = aws_msk_cluster.this[0].arn
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })
}

# --- Kinesis Data Streams ------------------------------------------------------------

resource "aws_kinesis_stream" "this" {
  for_each = local.is_kinesis ? var.stream_names : {}

  name             = each.value
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn
  shard_count      = var.kinesis_stream_mode == "PROVISIONED" ? var.kinesis_shard_count : null
  tags             = merge(var.tags, { EventType = each.key })

  shard_level_metrics = [
    "IncomingBytes",
    "IncomingRecords",
    "IteratorAgeMilliseconds",
    "OutgoingRecords",
    "ReadProvisionedThroughputExceeded",
    "WriteProvisionedThroughputExceeded",
  ]

  stream_mode_details {
    stream_mode = var.kinesis_stream_mode
  }
}
