output "bucket_name" {
  description = "Name of the zone bucket (SLUICE_S3_BUCKET)."
  value       = aws_s3_bucket.zone.id
}

output "bucket_arn" {
  description = "ARN of the zone bucket."
  value       = aws_s3_bucket.zone.arn
}

output "access_log_bucket_name" {
  description = "Name of the bucket receiving the zone bucket's server access logs."
  value       = aws_s3_bucket.access_logs.id
}

output "prefixes" {
  description = "Zone prefixes by zone (raw, clean, errors, manifests)."
  value       = local.zone_prefixes
}

output "error_metrics_filter_id" {
  description = "FilterId of the S3 request metrics on the error prefix (AWS/S3 PutRequests)."
  value       = aws_s3_bucket_metric.errors.name
}
