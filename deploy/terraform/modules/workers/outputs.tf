output "repository_url" {
  description = "ECR repository of the application image (push <url>:<image_tag>)."
  value       = aws_ecr_repository.this.repository_url
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_names" {
  description = "ECS service per worker (consume-<group>, load)."
  value       = { for key, service in aws_ecs_service.this : key => service.name }
}

output "log_group_name" {
  description = "Log group of every worker (the consumers' embedded metrics are read from it)."
  value       = aws_cloudwatch_log_group.this.name
}

output "loader_role_arn" {
  description = "Task role of the zone loader."
  value       = aws_iam_role.loader.arn
}
