#!/bin/sh
# LocalStack ready hook: what `sluice stack up` provisions on moto, here on LocalStack.
# Kinesis streams (2 shards) for every stream name, the S3 zone bucket. Idempotent.
set -eu

for stream in "${SLUICE_STREAM_FINANCIAL_TRANSACTION}" "${SLUICE_STREAM_INSURANCE_CLAIM}" "${SLUICE_STREAM_DLQ}"; do
    awslocal kinesis describe-stream-summary --stream-name "$stream" >/dev/null 2>&1 \
        || awslocal kinesis create-stream --stream-name "$stream" --shard-count 2
done
for stream in "${SLUICE_STREAM_FINANCIAL_TRANSACTION}" "${SLUICE_STREAM_INSURANCE_CLAIM}" "${SLUICE_STREAM_DLQ}"; do
    awslocal kinesis wait stream-exists --stream-name "$stream"
done

awslocal s3api head-bucket --bucket "${SLUICE_S3_BUCKET}" >/dev/null 2>&1 \
    || awslocal s3api create-bucket --bucket "${SLUICE_S3_BUCKET}"

echo "sluice: localstack provisioned"
