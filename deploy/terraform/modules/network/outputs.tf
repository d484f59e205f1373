output "vpc_id" {
  description = "Id of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Ids of the private subnets, one per availability zone."
  value       = [for az in var.availability_zones : aws_subnet.private[az].id]
}

output "workload_security_group_id" {
  description = "Security group of the functions and consumers (egress to endpoints, brokers, warehouse)."
  value       = aws_security_group.workload.id
}

output "endpoint_security_group_id" {
  description = "Security group of the interface VPC endpoints."
  value       = aws_security_group.endpoints.id
}

output "gateway_endpoint_ids" {
  description = "Ids of the S3 and DynamoDB gateway endpoints, by service."
  value       = { for service, endpoint in aws_vpc_endpoint.gateway : service => endpoint.id }
}

output "interface_endpoint_ids" {
  description = "Ids of the interface VPC endpoints, by service."
  value       = { for service, endpoint in aws_vpc_endpoint.interface : service => endpoint.id }
}
