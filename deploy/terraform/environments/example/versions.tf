terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.99.1, < 6.0.0"
    }
  }

  # The state holds the sensitive variables (PII HMAC key, API key records, loader
  # password): keep it in an encrypted, access-restricted bucket, for example
  #   terraform init -backend-config=backend.hcl
  # with a backend.hcl naming bucket, key, region, encrypt = true, kms_key_id and
  # use_lockfile = true, after adding `backend "s3" {}` here.
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "sluice"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
