# The long-running Sluice processes on ECS Fargate, from the application image
# (deploy/Dockerfile) in a private ECR repository: one service per consumer group
# (`sluice consume --group <group>`) and the zone loader's sweep (`sluice load
# --follow` without a queue: it lists the clean prefix and loads what no notification
# brought to the loader Lambda, after a grace age; Firehose writes no manifests). Tasks run in the private subnets without public IPs; secrets reach them
# through ECS from Secrets Manager, never as plain environment values.

data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name
  image  = "${aws_ecr_repository.this.repository_url}:${var.image_tag}"
  secrets = [
    for name, arn in var.secret_arns : { name = name, valueFrom = arn }
  ]
  services = merge(
    {
      for group in var.consumer_groups : "consume-${group}" => {
        command   = ["consume", "--group", group]
        role_arn  = var.consumer_role_arn
        desired   = var.consumer_tasks_per_group
        extra_env = { SLUICE_CONSUMER_GROUP = group }
      }
    },
    var.loader_enabled ? {
      "load" = {
        command   = ["load", "--follow"]
        role_arn  = aws_iam_role.loader.arn
        desired   = 1
        extra_env = {}
      }
    } : {},
  )
}

# --- Image repository ----------------------------------------------------------------

resource "aws_ecr_repository" "this" {
  name                 = "${var.name}-sluice"
  image_tag_mutability = "IMMUTABLE"
  tags                 = var.tags

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest ${var.images_kept} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.images_kept
      }
      action = { type = "expire" }
    }]
  })
}

# --- Cluster and logs ----------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = "${var.name}-sluice"
  tags = var.tags

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/sluice/${var.name}/workers"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# --- Roles ---------------------------------------------------------------------------

data "aws_iam_policy_document" "tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The execution role pulls the image, writes the log group and hands the secrets to the
# containers; the processes themselves never get it.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-workers-execution"
  description        = "ECS: pull the Sluice image, write its logs, inject its secrets"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  # ecr:GetAuthorizationToken has no resource-level permissions: AWS requires "*".
  statement {
    sid       = "PullImageToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullOwnImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid       = "DecryptImageAndSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = length(var.secret_arns) > 0 ? [1] : []
    content {
      sid       = "InjectOwnSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = values(var.secret_arns)
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The loader's task role: read the clean files and manifests, write manifests.
resource "aws_iam_role" "loader" {
  name               = "${var.name}-workers-loader"
  description        = "Sluice zone loader: read clean files and manifests, write manifests"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "loader" {
  statement {
    sid       = "ReadCleanFilesAndManifests"
    actions   = ["s3:GetObject"]
    resources = ["${var.bucket_arn}/${var.clean_prefix}*", "${var.bucket_arn}/${var.manifest_prefix}*"]
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
      values   = ["${var.clean_prefix}*", "${var.manifest_prefix}*"]
    }
  }

  statement {
    sid       = "UseZoneKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "loader" {
  name   = "load-zone"
  role   = aws_iam_role.loader.id
  policy = data.aws_iam_policy_document.loader.json
}

# --- Tasks and services --------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  for_each = local.services

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory_mb
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = each.value.role_arn
  tags                     = var.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # The root file system is read-only; /tmp is task storage.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([{
    name                   = "sluice"
    image                  = local.image
    command                = each.value.command
    essential              = true
    readonlyRootFilesystem = true
    user                   = "sluice"
    environment = [
      for key, value in merge(var.environment, each.value.extra_env) : { name = key, value = value }
    ]
    secrets     = local.secrets
    mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    # SIGTERM lets a consumer finish and commit its batch before it stops.
    stopTimeout = 60
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = local.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

resource "aws_ecs_service" "this" {
  for_each = local.services

  name             = each.key
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.this[each.key].arn
  desired_count    = each.value.desired
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"
  tags             = var.tags

  # Rolling replacement: a member leaves (commits, closes) before its successor joins.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}
