#!/bin/sh
# The same as events.yaml, with the AWS CLI: the queue, the rule sending Bedrock's batch job state
# changes to it, the queue policy letting EventBridge send, and the daemon's policy.
# Usage: REGION=us-east-1 BUCKET=my-results PREFIX=batches/ sh deploy/aws/events-cli.sh
set -eu
: "${REGION:?set REGION}" "${BUCKET:?set BUCKET}"
PREFIX="${PREFIX:-batches/}"
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
PARTITION=aws

QUEUE_URL=$(aws sqs create-queue --region "$REGION" --queue-name batch-poller-events \
  --attributes VisibilityTimeout=60,MessageRetentionPeriod=345600,SqsManagedSseEnabled=true \
  --query QueueUrl --output text)
QUEUE_ARN="arn:$PARTITION:sqs:$REGION:$ACCOUNT:batch-poller-events"

RULE_ARN=$(aws events put-rule --region "$REGION" --name batch-poller-bedrock-batch \
  --event-pattern '{"source":["aws.bedrock"],"detail-type":["Batch Inference Job State Change"]}' \
  --query RuleArn --output text)

POLICY=$(cat <<JSON
{"Version":"2012-10-17","Statement":[{"Sid":"EventBridgeSendsBedrockBatchStateChanges",
 "Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:SendMessage",
 "Resource":"$QUEUE_ARN","Condition":{"ArnEquals":{"aws:SourceArn":"$RULE_ARN"}}}]}
JSON
)
aws sqs set-queue-attributes --region "$REGION" --queue-url "$QUEUE_URL" \
  --attributes "$(printf '{"Policy": %s}' "$(printf '%s' "$POLICY" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')")"

aws events put-targets --region "$REGION" --rule batch-poller-bedrock-batch \
  --targets "Id=batch-poller,Arn=$QUEUE_ARN"

aws iam create-policy --policy-name batch-poller --policy-document "$(cat <<JSON
{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["bedrock:GetModelInvocationJob","bedrock:ListModelInvocationJobs","bedrock:ListTagsForResource"],"Resource":"*"},
 {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:$PARTITION:s3:::$BUCKET"},
 {"Effect":"Allow","Action":["s3:GetObject","s3:DeleteObject"],"Resource":"arn:$PARTITION:s3:::$BUCKET/$PREFIX*"},
 {"Effect":"Allow","Action":["sqs:ReceiveMessage","sqs:DeleteMessage","sqs:GetQueueAttributes"],"Resource":"$QUEUE_ARN"}]}
JSON
)"

echo "[events] sqs_queue_url = \"$QUEUE_URL\""
