"""AWS through boto3, made async once: S3 objects, ECR and ECS, ELBv2 weights and CloudWatch."""
