# A customer-managed KMS key as every module of the platform makes one: rotated yearly, 30 days
# before deletion, administered by the account root (use is granted by the components' IAM
# policies), usable by the regional CloudWatch Logs service for the component's log groups.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" is the key it is attached to, nothing else; the account root must administer the key or it becomes unmanageable.
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is the key it is attached to; writes are granted to the account root and (for logs) the regional CloudWatch Logs service only.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" is the key it is attached to (AWS's key-policy grammar), not every resource.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:aws:logs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.this.json
  tags                    = var.tags
}
