# The S3 intermediate zone (raw/, clean/, errors/, manifests/) and the bucket that
# receives its server access logs. Versioned, encrypted with the environment's KMS key,
# reachable over TLS only, never public; each zone prefix has its own lifecycle.

locals {
  zone_prefixes = {
    raw       = var.raw_prefix
    clean     = var.clean_prefix
    errors    = var.error_prefix
    manifests = var.manifest_prefix
  }
}

# --- Zone bucket ---------------------------------------------------------------------

resource "aws_s3_bucket" "zone" {
  #checkov:skip=CKV2_AWS_62:The zone's object notifications (loader trigger) are configured by the warehouse module's aws_s3_bucket_notification, which checkov cannot link across modules.
  bucket = var.bucket_name
  tags   = merge(var.tags, { Role = "sluice-zone" })
}

resource "aws_s3_bucket_ownership_controls" "zone" {
  bucket = aws_s3_bucket.zone.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "zone" {
  bucket                  = aws_s3_bucket.zone.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "zone" {
  bucket = aws_s3_bucket.zone.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "zone" {
  bucket = aws_s3_bucket.zone.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "zone" {
  bucket        = aws_s3_bucket.zone.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "s3/${var.bucket_name}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "zone" {
  bucket = aws_s3_bucket.zone.id

  dynamic "rule" {
    for_each = local.zone_prefixes
    content {
      id     = "zone-${rule.key}"
      status = "Enabled"

      filter {
        prefix = rule.value
      }

      dynamic "transition" {
        for_each = var.lifecycle_days[rule.key].infrequent_access == null ? [] : [var.lifecycle_days[rule.key].infrequent_access]
        content {
          days          = transition.value
          storage_class = "STANDARD_IA"
        }
      }

      dynamic "transition" {
        for_each = var.lifecycle_days[rule.key].glacier == null ? [] : [var.lifecycle_days[rule.key].glacier]
        content {
          days          = transition.value
          storage_class = "GLACIER"
        }
      }

      expiration {
        days = var.lifecycle_days[rule.key].expiration
      }

      noncurrent_version_expiration {
        noncurrent_days = var.noncurrent_version_days
      }
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {
      prefix = ""
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.zone]
}

data "aws_iam_policy_document" "zone_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.zone.arn,
      "${aws_s3_bucket.zone.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyOutdatedTls"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.zone.arn,
      "${aws_s3_bucket.zone.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "zone" {
  bucket     = aws_s3_bucket.zone.id
  policy     = data.aws_iam_policy_document.zone_tls_only.json
  depends_on = [aws_s3_bucket_public_access_block.zone]
}

# Request metrics on the error prefix: every object Firehose writes there (records the
# transform marked ProcessingFailed, batches it could not transform or deliver) counts
# as a PutRequest, which the monitoring module alarms on.
resource "aws_s3_bucket_metric" "errors" {
  bucket = aws_s3_bucket.zone.id
  name   = "errors"

  filter {
    prefix = var.error_prefix
  }
}

# --- Access log bucket ---------------------------------------------------------------
# S3 server access logging can only deliver to a bucket encrypted with SSE-S3 (SSE-KMS
# is not supported for log delivery), and a log bucket does not log itself.

resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV_AWS_145:S3 server access log delivery does not support SSE-KMS target buckets; SSE-S3 is used.
  #checkov:skip=CKV_AWS_18:This is the access log bucket; logging it into itself would loop.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the access log bucket.
  bucket = "${var.bucket_name}-access-logs"
  tags   = merge(var.tags, { Role = "sluice-access-logs" })
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket                  = aws_s3_bucket.access_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {
      prefix = ""
    }

    expiration {
      days = var.access_log_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.access_logs]
}

data "aws_iam_policy_document" "access_logs" {
  statement {
    sid       = "S3LogDeliveryFromZoneBucket"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs.arn}/s3/${var.bucket_name}/*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.zone.arn]
    }
  }

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.access_logs.arn,
      "${aws_s3_bucket.access_logs.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket     = aws_s3_bucket.access_logs.id
  policy     = data.aws_iam_policy_document.access_logs.json
  depends_on = [aws_s3_bucket_public_access_block.access_logs]
}
