output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies (subscribe the on-call pager here)."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "custom_metrics" {
  description = "Namespace and metric names the alarms expect from the Sluice components."
  value       = var.custom_metrics
}

output "alarm_names" {
  description = "Names of the alarms, by purpose."
  value = merge(
    {
      consumer_lag_records      = aws_cloudwatch_metric_alarm.consumer_lag_records.alarm_name
      consumer_lag_seconds      = aws_cloudwatch_metric_alarm.consumer_lag_seconds.alarm_name
      dlq_records               = aws_cloudwatch_metric_alarm.dlq_records.alarm_name
      processing_failed_objects = aws_cloudwatch_metric_alarm.processing_failed_objects.alarm_name
      api_5xx                   = aws_cloudwatch_metric_alarm.api_5xx.alarm_name
      api_4xx                   = aws_cloudwatch_metric_alarm.api_4xx.alarm_name
      loader_dlq                = aws_cloudwatch_metric_alarm.loader_dlq.alarm_name
    },
    { for key, alarm in aws_cloudwatch_metric_alarm.iterator_age : "iterator_age_${key}" => alarm.alarm_name },
    { for key, alarm in aws_cloudwatch_metric_alarm.firehose_delivery : "firehose_delivery_${key}" => alarm.alarm_name },
    { for key, alarm in aws_cloudwatch_metric_alarm.firehose_transform : "firehose_transform_${key}" => alarm.alarm_name },
  )
}
