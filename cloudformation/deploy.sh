#!/usr/bin/env bash
# Deploys logrelay's central account: uploads the nested templates to the template bucket, then creates or
# updates the main stack (core, optional SQS and Lambda stacks) and prints its outputs.
#
# The random suffix of bucket and role names is generated on the first deployment and read back from the existing
# stack on every update, so names (and the central role ARN that tenants trust) never change.
#
# --top-level-stacks deploys each nested template of main.yaml as its own stack instead (STACK-core, STACK-sqs,
# STACK-lambda), in dependency order, passing each the parameters main.yaml passes it (top_level_wiring below; checked
# against main.yaml by cloudformation/checks/top_level_wiring.py). For emulators without nested-stack outputs (moto).
#
# Needs: the AWS CLI v2 with credentials for the central account. cfn-lint is used for validation when present.
# Walkthrough: docs/deploy.md.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

environment="development"
project_name="multi-tenant-logging"
region="${AWS_REGION:-us-east-1}"
stack_name=""
template_bucket=""
template_prefix="cloudformation/templates/"
profile="${AWS_PROFILE:-}"
include_sqs="false"
include_lambda="false"
ecr_image_uri=""
oidc_issuer=""
dry_run="false"
validate_only="false"
top_level="false"
print_wiring="false"
extra_params=()

nested_templates=(core-infrastructure.yaml sqs-stack.yaml lambda-stack.yaml)
all_templates=(main.yaml "${nested_templates[@]}" customer-log-distribution-role.yaml cluster-s3-writer-role.yaml)

# --top-level-stacks: main.yaml's nested stacks in dependency order: logical id, template, stack name suffix.
top_level_stacks=(
    "CoreInfrastructureStack core-infrastructure.yaml core"
    "SQSStack sqs-stack.yaml sqs"
    "LambdaStack lambda-stack.yaml lambda"
)
# What main.yaml passes each nested stack, where it is not `!Ref SameName` of a main.yaml parameter (a parameter a
# template declares under the name of a main.yaml parameter gets that parameter's value). "LOGICAL PARAMETER SOURCE":
#   Stack.Outputs.Name   an earlier stack's output (!GetAtt Stack.Outputs.Name)
#   Ref:P                main.yaml parameter P
#   FindInMap:M:P:K      main.yaml mapping M at parameter P's value, key K (!FindInMap [M, !Ref P, K])
#   If:C:A:B             parameter A, or B when A is empty (!If [C, !Ref A, !Ref B], C being A not empty)
top_level_wiring=(
    "SQSStack LogDeliveryTopicArn CoreInfrastructureStack.Outputs.LogDeliveryTopicArn"
    "SQSStack KmsKeyArn CoreInfrastructureStack.Outputs.KmsKeyArn"
    "SQSStack VisibilityTimeoutSeconds FindInMap:VisibilityForTimeout:ProcessorTimeoutSeconds:VisibilityTimeout"
    "SQSStack ClusterOidcIssuer If:HasProcessorClusterOidcIssuer:ProcessorClusterOidcIssuer:ClusterOidcIssuer"
    "SQSStack CentralLoggingBucketArn CoreInfrastructureStack.Outputs.CentralLoggingBucketArn"
    "SQSStack TenantConfigTableArn CoreInfrastructureStack.Outputs.TenantConfigTableArn"
    "SQSStack DeliveryProgressTableArn CoreInfrastructureStack.Outputs.DeliveryProgressTableArn"
    "SQSStack CentralLogDistributionRoleArn CoreInfrastructureStack.Outputs.CentralLogDistributionRoleArn"
    "LambdaStack TenantConfigTableName CoreInfrastructureStack.Outputs.TenantConfigTableName"
    "LambdaStack TenantConfigTableArn CoreInfrastructureStack.Outputs.TenantConfigTableArn"
    "LambdaStack DeliveryProgressTableName CoreInfrastructureStack.Outputs.DeliveryProgressTableName"
    "LambdaStack DeliveryProgressTableArn CoreInfrastructureStack.Outputs.DeliveryProgressTableArn"
    "LambdaStack CentralLoggingBucketArn CoreInfrastructureStack.Outputs.CentralLoggingBucketArn"
    "LambdaStack CentralLogDistributionRoleArn CoreInfrastructureStack.Outputs.CentralLogDistributionRoleArn"
    "LambdaStack KmsKeyArn CoreInfrastructureStack.Outputs.KmsKeyArn"
    "LambdaStack SQSQueueArn SQSStack.Outputs.LogDeliveryQueueArn"
    "LambdaStack SQSQueueUrl SQSStack.Outputs.LogDeliveryQueueUrl"
    "LambdaStack DLQUrl SQSStack.Outputs.LogDeliveryDLQUrl"
    "LambdaStack DLQArn SQSStack.Outputs.LogDeliveryDLQArn"
    "LambdaStack TimeoutSeconds Ref:ProcessorTimeoutSeconds"
)

# Parameter names of the proof of concept's templates, and the main.yaml parameter each now is. --param OLD=VALUE
# is accepted with a deprecation line on stderr.
declare -A renamed_params=(
    [EksOidcIssuer]=ClusterOidcIssuer
    [S3StandardIADays]=S3TransitionToIADays
    [S3GlacierDays]=S3TransitionToGlacierDays
    [S3DeepArchiveDays]=S3TransitionToDeepArchiveDays
    [S3LogRetentionDays]=S3ExpirationDays
    [S3DeleteAfterDays]=S3ExpirationDays
    [LambdaReservedConcurrency]=ReservedConcurrency
)

info() { printf '[INFO] %s\n' "$*"; }
warn() { printf '[WARN] %s\n' "$*" >&2; }
die() {
    printf '[ERROR] %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<EOF
Usage: $(basename "$0") -b TEMPLATE_BUCKET [OPTIONS]

Deploy the logrelay central infrastructure with CloudFormation (nested stacks).

Options:
  -e, --environment ENV       production | staging | development (default: ${environment})
  -p, --project-name NAME     project name, first part of every resource name (default: ${project_name})
  -r, --region REGION         AWS region (default: \$AWS_REGION or us-east-1)
  -s, --stack-name NAME       main stack name (default: PROJECT-ENVIRONMENT)
  -b, --template-bucket NAME  bucket for the nested templates (required; created if missing)
      --template-prefix P     key prefix of the nested templates (default: ${template_prefix})
      --profile PROFILE       AWS CLI profile
      --include-sqs           deploy the delivery queue and DLQ (needed by both processor modes)
      --include-lambda        deploy the processor as a Lambda function (implies --include-sqs)
      --ecr-image-uri URI     processor image in ECR (required with --include-lambda)
      --oidc-issuer ISSUER    cluster OIDC issuer without https:// (creates the IRSA roles)
      --param KEY=VALUE       any other main.yaml parameter (repeatable), e.g. --param S3ExpirationDays=400;
                              the proof of concept's names (EksOidcIssuer, S3StandardIADays, S3GlacierDays,
                              S3DeepArchiveDays, S3LogRetentionDays, LambdaReservedConcurrency) are accepted
                              and renamed, with a deprecation line on stderr
      --top-level-stacks      deploy core, SQS and Lambda templates as separate top-level stacks (STACK-core,
                              STACK-sqs, STACK-lambda) wired as main.yaml wires them, without the template
                              bucket (-b not needed); for emulators without nested-stack outputs (moto). Prints
                              each stack's status and outputs, and the template resources it did not create
      --print-wiring          print what --top-level-stacks passes each stack (LOGICAL PARAMETER SOURCE) and stop
      --dry-run               print the AWS commands that would change something, change nothing
      --validate-only         validate the templates and stop
  -h, --help                  this help

Examples:
  $(basename "$0") -b my-cfn-templates --include-sqs --oidc-issuer oidc.example.com/abc123
  $(basename "$0") -e production -b my-cfn-templates --include-lambda \\
      --ecr-image-uri 123456789012.dkr.ecr.us-east-1.amazonaws.com/logrelay-processor:0.1.0
EOF
}

need_value() {
    [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        -e | --environment) need_value "$@"; environment="$2"; shift 2 ;;
        -p | --project-name) need_value "$@"; project_name="$2"; shift 2 ;;
        -r | --region) need_value "$@"; region="$2"; shift 2 ;;
        -s | --stack-name) need_value "$@"; stack_name="$2"; shift 2 ;;
        -b | --template-bucket) need_value "$@"; template_bucket="$2"; shift 2 ;;
        --template-prefix) need_value "$@"; template_prefix="$2"; shift 2 ;;
        --profile) need_value "$@"; profile="$2"; shift 2 ;;
        --include-sqs) include_sqs="true"; shift ;;
        --include-lambda) include_lambda="true"; include_sqs="true"; shift ;;
        --ecr-image-uri) need_value "$@"; ecr_image_uri="$2"; shift 2 ;;
        --oidc-issuer) need_value "$@"; oidc_issuer="${2#https://}"; shift 2 ;;
        --param) need_value "$@"; extra_params+=("$2"); shift 2 ;;
        --top-level-stacks) top_level="true"; shift ;;
        --print-wiring) print_wiring="true"; top_level="true"; shift ;;
        --dry-run) dry_run="true"; shift ;;
        --validate-only) validate_only="true"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

[[ "${environment}" =~ ^(production|staging|development)$ ]] || die "environment must be production, staging or development"
[[ "${project_name}" =~ ^[a-z][a-z0-9-]{1,19}$ ]] || die "project name: 2-20 lower-case letters, digits, dashes"
[[ "${template_prefix}" == "" || "${template_prefix}" == */ ]] || template_prefix="${template_prefix}/"
stack_name="${stack_name:-${project_name}-${environment}}"
if [[ "${validate_only}" != "true" && "${top_level}" != "true" ]]; then
    [[ -n "${template_bucket}" ]] || { usage >&2; die "the template bucket is required (-b)"; }
fi
if [[ "${include_lambda}" == "true" && -z "${ecr_image_uri}" ]]; then
    die "--include-lambda needs --ecr-image-uri (build containers/Containerfile.processor and push it to ECR)"
fi
# The parameters main.yaml declares (the keys of its Parameters section).
main_params=" $(awk '/^Parameters:/ { p = 1; next } /^[A-Za-z]/ { p = 0 } p && /^  [A-Za-z0-9]+:$/ { sub(/:$/, ""); printf "%s ", $1 }' "${script_dir}/main.yaml")"
# Set by the flags above; --param may not set them a second time.
flag_params=" Environment ProjectName RandomSuffix TemplateBucket TemplatePrefix IncludeSQSStack IncludeLambdaStack ECRImageUri "
checked_params=()
for kv in "${extra_params[@]}"; do
    [[ "${kv}" =~ ^[A-Za-z0-9]+=.*$ ]] || die "--param takes KEY=VALUE, got: ${kv}"
    key="${kv%%=*}"
    value="${kv#*=}"
    if [[ -n "${renamed_params[${key}]:-}" ]]; then
        warn "--param ${key} is deprecated (the proof of concept's name): use --param ${renamed_params[${key}]}"
        key="${renamed_params[${key}]}"
    fi
    [[ "${main_params}" == *" ${key} "* ]] || die "--param ${key}: main.yaml has no such parameter (its parameters:${main_params})"
    [[ "${flag_params}" != *" ${key} "* ]] || die "--param ${key}: set it with its option instead (see --help)"
    if [[ "${key}" == "ClusterOidcIssuer" ]]; then
        value="${value#https://}"
        [[ -z "${oidc_issuer}" || "${oidc_issuer}" == "${value}" ]] || die "--param ${kv%%=*} and --oidc-issuer differ: give one"
        oidc_issuer="${value}"
        continue
    fi
    for seen in "${checked_params[@]}"; do
        [[ "${seen%%=*}" != "${key}" ]] || die "--param ${key} is given twice (perhaps under its old and new name)"
    done
    checked_params+=("${key}=${value}")
done
extra_params=("${checked_params[@]}")

aws_args=(--region "${region}")
[[ -n "${profile}" ]] && aws_args+=(--profile "${profile}")

have_aws() { command -v aws >/dev/null 2>&1; }

aws_cli() { aws "${aws_args[@]}" "$@"; }

# Runs a command that changes something, or only prints it with --dry-run.
change() {
    if [[ "${dry_run}" == "true" ]]; then
        printf '[DRY-RUN] aws'
        printf ' %q' "${aws_args[@]}" "$@"
        printf '\n'
    else
        aws_cli "$@"
    fi
}

validate_templates() {
    local t
    for t in "${all_templates[@]}"; do
        [[ -f "${script_dir}/${t}" ]] || die "template not found: ${script_dir}/${t}"
    done
    if command -v cfn-lint >/dev/null 2>&1; then
        info "cfn-lint on ${#all_templates[@]} templates"
        (cd "${script_dir}" && cfn-lint "${all_templates[@]}") || die "cfn-lint found problems"
    else
        warn "cfn-lint not found (scripts/dev-env.sh installs it into .venv); skipping the offline lint"
    fi
    if have_aws && aws_cli sts get-caller-identity >/dev/null 2>&1; then
        for t in "${all_templates[@]}"; do
            aws_cli cloudformation validate-template --template-body "file://${script_dir}/${t}" >/dev/null \
                || die "${t}: CloudFormation rejected the template"
        done
        info "CloudFormation accepted all templates"
    else
        warn "no AWS CLI credentials: skipped aws cloudformation validate-template"
    fi
}

# The suffix of an existing stack, or a new random one.
random_suffix() {
    local existing=""
    if have_aws; then
        local name="${stack_name}"
        [[ "${top_level}" != "true" ]] || name="${stack_name}-core"
        existing="$(aws_cli cloudformation describe-stacks --stack-name "${name}" \
            --query "Stacks[0].Parameters[?ParameterKey=='RandomSuffix'].ParameterValue" \
            --output text 2>/dev/null || true)"
    fi
    if [[ "${existing}" =~ ^[a-f0-9]{8}$ ]]; then
        info "existing stack ${stack_name}: keeping RandomSuffix ${existing}" >&2
        printf '%s' "${existing}"
    else
        od -An -N4 -tx1 /dev/urandom | tr -d ' \n'
    fi
}

ensure_template_bucket() {
    if have_aws && aws_cli s3api head-bucket --bucket "${template_bucket}" >/dev/null 2>&1; then
        info "template bucket ${template_bucket} exists"
        return
    fi
    info "creating template bucket ${template_bucket}"
    if [[ "${region}" == "us-east-1" ]]; then
        change s3api create-bucket --bucket "${template_bucket}"
    else
        change s3api create-bucket --bucket "${template_bucket}" \
            --create-bucket-configuration "LocationConstraint=${region}"
    fi
    change s3api put-public-access-block --bucket "${template_bucket}" --public-access-block-configuration \
        BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
    change s3api put-bucket-versioning --bucket "${template_bucket}" --versioning-configuration Status=Enabled
}

upload_templates() {
    local t
    for t in "${nested_templates[@]}"; do
        info "uploading ${t} to s3://${template_bucket}/${template_prefix}${t}"
        change s3 cp --only-show-errors "${script_dir}/${t}" "s3://${template_bucket}/${template_prefix}${t}"
    done
}

deploy_stack() {
    local suffix="$1"
    local params=(
        "Environment=${environment}"
        "ProjectName=${project_name}"
        "RandomSuffix=${suffix}"
        "TemplateBucket=${template_bucket}"
        "TemplatePrefix=${template_prefix}"
        "IncludeSQSStack=${include_sqs}"
        "IncludeLambdaStack=${include_lambda}"
        "ECRImageUri=${ecr_image_uri}"
        "ClusterOidcIssuer=${oidc_issuer}"
        "${extra_params[@]}"
    )
    info "deploying stack ${stack_name} (sqs=${include_sqs}, lambda=${include_lambda}, suffix=${suffix})"
    change cloudformation deploy \
        --stack-name "${stack_name}" \
        --template-file "${script_dir}/main.yaml" \
        --parameter-overrides "${params[@]}" \
        --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
        --tags "Project=${project_name}" "Environment=${environment}" "ManagedBy=logrelay-deploy.sh" \
        --no-fail-on-empty-changeset
}

# The top-level parameter names of a template (the keys of its Parameters section), space-separated and padded.
template_params() {
    printf ' %s' "$(awk '/^Parameters:/ { p = 1; next } /^[A-Za-z]/ { p = 0 } p && /^  [A-Za-z0-9]+:$/ { sub(/:$/, ""); printf "%s ", $1 }' "$1")"
}

# Every parameter --top-level-stacks passes, one "LOGICAL PARAMETER SOURCE" line each (implicit ones as Ref:P).
wiring_lines() {
    local entry logical file suffix param line explicit
    for entry in "${top_level_stacks[@]}"; do
        read -r logical file suffix <<<"${entry}"
        explicit=" "
        for line in "${top_level_wiring[@]}"; do
            [[ "${line}" == "${logical} "* ]] || continue
            printf '%s\n' "${line}"
            explicit+="$(cut -d' ' -f2 <<<"${line}") "
        done
        for param in $(template_params "${script_dir}/${file}"); do
            if [[ "${main_params}" == *" ${param} "* && "${explicit}" != *" ${param} "* ]]; then
                printf '%s %s Ref:%s\n' "${logical}" "${param}" "${param}"
            fi
        done
    done
}

# main.yaml's parameter values: its defaults, then the options, then --param.
declare -A main_values=()
load_main_values() {
    local name value kv
    while IFS=$'\t' read -r name value; do
        main_values["${name}"]="${value}"
    done < <(awk '/^Parameters:/ { p = 1; next } /^[A-Za-z]/ { p = 0 }
        p && /^  [A-Za-z0-9]+:$/ { name = $1; sub(/:$/, "", name) }
        p && /^    Default:/ { v = $0; sub(/^    Default: */, "", v); gsub(/^"|"$/, "", v); printf "%s\t%s\n", name, v }' \
        "${script_dir}/main.yaml")
    main_values[Environment]="${environment}"
    main_values[ProjectName]="${project_name}"
    main_values[RandomSuffix]="$1"
    main_values[TemplateBucket]="${template_bucket}"
    main_values[TemplatePrefix]="${template_prefix}"
    main_values[IncludeSQSStack]="${include_sqs}"
    main_values[IncludeLambdaStack]="${include_lambda}"
    main_values[ECRImageUri]="${ecr_image_uri}"
    main_values[ClusterOidcIssuer]="${oidc_issuer}"
    for kv in "${extra_params[@]}"; do
        main_values["${kv%%=*}"]="${kv#*=}"
    done
}

# A value of main.yaml's Mappings: map, top-level key, second-level key.
mapping_value() {
    awk -v m="$1" -v k="$2" -v s="$3" '/^Mappings:/ { p = 1; next } /^[A-Za-z]/ { p = 0 }
        p && /^  [^ ]/ { cur = $1; sub(/:$/, "", cur) }
        p && /^    [^ ]/ { top = $1; sub(/:$/, "", top); gsub(/"/, "", top) }
        p && /^      [^ ]/ { key = $1; sub(/:$/, "", key); if (cur == m && top == k && key == s) { print $2; exit } }' \
        "${script_dir}/main.yaml"
}

# Resolves one wiring SOURCE from main_values and the outputs of the stacks deployed so far.
declare -A stack_outputs=()
resolve_source() {
    local source="$1" map param key first second
    case "${source}" in
        Ref:*) printf '%s' "${main_values[${source#Ref:}]:-}" ;;
        FindInMap:*)
            IFS=: read -r _ map param key <<<"${source}"
            mapping_value "${map}" "${main_values[${param}]:-}" "${key}"
            ;;
        If:*)
            IFS=: read -r _ _ first second <<<"${source}"
            if [[ -n "${main_values[${first}]:-}" ]]; then printf '%s' "${main_values[${first}]}"; else
                printf '%s' "${main_values[${second}]:-}"
            fi
            ;;
        *.Outputs.*)
            if [[ "${dry_run}" == "true" ]]; then printf '<%s>' "${source}"; else
                [[ -n "${stack_outputs[${source}]+set}" ]] || die "${source}: no such output (deployed so far: ${!stack_outputs[*]})"
                printf '%s' "${stack_outputs[${source}]}"
            fi
            ;;
        *) die "unknown wiring source: ${source}" ;;
    esac
}

# Deploys one nested template as a top-level stack, then records its outputs and reports what it did not create.
deploy_top_level_stack() {
    local logical="$1" file="$2" name="$3" line param source params=() kv key value declared created missing=()
    while read -r line; do
        [[ "${line}" == "${logical} "* ]] || continue
        read -r _ param source <<<"${line}"
        params+=("${param}=$(resolve_source "${source}")")
    done < <(wiring_lines)
    if [[ "${dry_run}" != "true" ]] && ! aws_cli cloudformation describe-stacks --stack-name "${name}" >/dev/null 2>&1; then
        # A new stack is created without a change set: moto's change sets leave a stack without outputs.
        info "creating stack ${name} (${file}, ${#params[@]} parameters)"
        local json="[" sep=""
        for kv in "${params[@]}"; do
            key="${kv%%=*}"
            value="${kv#*=}"
            value="${value//\\/\\\\}"
            json+="${sep}{\"ParameterKey\":\"${key}\",\"ParameterValue\":\"${value//\"/\\\"}\"}"
            sep=","
        done
        aws_cli cloudformation create-stack --stack-name "${name}" \
            --template-body "file://${script_dir}/${file}" --parameters "${json}]" \
            --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
            --tags "Key=Project,Value=${project_name}" "Key=Environment,Value=${environment}" \
            "Key=ManagedBy,Value=logrelay-deploy.sh" >/dev/null
        aws_cli cloudformation wait stack-create-complete --stack-name "${name}" \
            || die "${name}: creation failed (aws cloudformation describe-stack-events --stack-name ${name})"
    else
        info "deploying stack ${name} (${file}, ${#params[@]} parameters)"
        change cloudformation deploy \
            --stack-name "${name}" \
            --template-file "${script_dir}/${file}" \
            --parameter-overrides "${params[@]}" \
            --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
            --tags "Project=${project_name}" "Environment=${environment}" "ManagedBy=logrelay-deploy.sh" \
            --no-fail-on-empty-changeset
    fi
    [[ "${dry_run}" != "true" ]] || return 0
    info "${name}: $(aws_cli cloudformation describe-stacks --stack-name "${name}" --query 'Stacks[0].StackStatus' --output text)"
    while IFS=$'\t' read -r key value; do
        [[ -n "${key}" && "${key}" != "None" ]] || continue
        stack_outputs["${logical}.Outputs.${key}"]="${value}"
        printf '    output %s = %s\n' "${key}" "${value}"
    done < <(aws_cli cloudformation describe-stacks --stack-name "${name}" \
        --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text)
    declared="$(awk '/^Resources:/ { p = 1; next } /^[A-Za-z]/ { p = 0 } p && /^  [A-Za-z0-9]+:$/ { sub(/:$/, ""); print $1 }' \
        "${script_dir}/${file}")"
    created=" $(aws_cli cloudformation list-stack-resources --stack-name "${name}" \
        --query 'StackResourceSummaries[].LogicalResourceId' --output text | tr '\t\n' '  ') "
    for key in ${declared}; do
        [[ "${created}" == *" ${key} "* ]] || missing+=("${key}")
    done
    if ((${#missing[@]})); then
        warn "${name}: not created (the emulator skips the type, or its Condition is false): ${missing[*]}"
    fi
}

deploy_top_level() {
    local suffix="$1" entry logical file short
    load_main_values "${suffix}"
    for entry in "${top_level_stacks[@]}"; do
        read -r logical file short <<<"${entry}"
        case "${short}" in
            sqs) [[ "${include_sqs}" == "true" ]] || continue ;;
            lambda) [[ "${include_lambda}" == "true" ]] || continue ;;
        esac
        deploy_top_level_stack "${logical}" "${file}" "${stack_name}-${short}"
    done
}

print_outputs() {
    if [[ "${dry_run}" == "true" ]]; then
        info "dry run: no outputs"
        return
    fi
    aws_cli cloudformation describe-stacks --stack-name "${stack_name}" \
        --query 'Stacks[0].Outputs[*].[OutputKey,OutputValue]' --output table
}

main() {
    if [[ "${print_wiring}" == "true" ]]; then
        wiring_lines
        exit 0
    fi
    info "stack ${stack_name} | environment ${environment} | project ${project_name} | region ${region}"
    validate_templates
    if [[ "${validate_only}" == "true" ]]; then
        info "templates are valid"
        exit 0
    fi
    if ! have_aws; then
        [[ "${dry_run}" == "true" ]] || die "the AWS CLI v2 is required (https://docs.aws.amazon.com/cli/)"
        warn "no AWS CLI: dry run without reading the existing stack"
    elif [[ "${dry_run}" != "true" ]]; then
        aws_cli sts get-caller-identity --query Account --output text >/dev/null \
            || die "the AWS CLI has no valid credentials"
    fi
    local suffix
    suffix="$(random_suffix)"
    if [[ "${top_level}" == "true" ]]; then
        deploy_top_level "${suffix}"
        info "next: annotate the ServiceAccounts and fill the ConfigMaps in k8s/ from these outputs (docs/deploy.md)"
        return
    fi
    ensure_template_bucket
    upload_templates
    deploy_stack "${suffix}"
    print_outputs
    info "next: annotate the ServiceAccounts and fill the ConfigMaps in k8s/ from these outputs (docs/deploy.md)"
}

main
