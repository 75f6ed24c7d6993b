{{/*
Names, labels and the pieces the api, worker and migrations templates share.
Helpers that need a component take a dict: (dict "context" $ "component" "api").
*/}}

{{/* Chart name, or nameOverride. */}}
{{- define "ipt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name; "<release>-ipt" unless the release name already contains it. */}}
{{- define "ipt.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's resources, e.g. "<fullname>-api"; kept within the 63-character label limit. */}}
{{- define "ipt.componentName" -}}
{{- printf "%s-%s" (include "ipt.fullname" .context) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "ipt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select one component's pods; they never change across upgrades. */}}
{{- define "ipt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ipt.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* Labels of every resource; pass component "" for release-wide resources. */}}
{{- define "ipt.labels" -}}
helm.sh/chart: {{ include "ipt.chart" .context }}
{{ include "ipt.selectorLabels" . }}
app.kubernetes.io/version: {{ include "ipt.imageTag" .context | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: ipt-care-service
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* metadata.annotations of a resource: commonAnnotations plus "extra" (hook annotations, say),
starting with a newline at metadata's indentation; nothing when both are empty. Call it as
{{- include "ipt.annotations" (dict "context" $ "extra" $hookAnnotations) }} */}}
{{- define "ipt.annotations" -}}
{{- with merge (dict) (default (dict) .extra) .context.Values.commonAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}

{{/* Tag shared by both images. */}}
{{- define "ipt.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* Image reference of a component: (dict "context" $ "image" .Values.api.image). A digest wins over the tag. */}}
{{- define "ipt.image" -}}
{{- $registry := .context.Values.image.registry }}
{{- $name := .image.repository }}
{{- if $registry }}
{{- $name = printf "%s/%s" $registry $name }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $name .image.digest }}
{{- else }}
{{- printf "%s:%s" $name (include "ipt.imageTag" .context) }}
{{- end }}
{{- end }}

{{/* ServiceAccount of the api and the worker. */}}
{{- define "ipt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ipt.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* ServiceAccount of the migrations job: a hook of its own when the chart creates accounts,
because the release's account does not exist yet at pre-install. */}}
{{- define "ipt.migrations.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "ipt.componentName" (dict "context" . "component" "migrations") }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* IPT_ALLOWED_HOSTS: the given hosts, else the api Service's in-cluster DNS names. */}}
{{- define "ipt.allowedHosts" -}}
{{- if .Values.allowedHosts }}
{{- join "," .Values.allowedHosts }}
{{- else }}
{{- $service := include "ipt.componentName" (dict "context" . "component" "api") }}
{{- $ns := .Release.Namespace }}
{{- printf "%s,%s.%s,%s.%s.svc,%s.%s.svc.cluster.local" $service $service $ns $service $ns $service $ns }}
{{- end }}
{{- end }}

{{/* IPT_PUBLIC_BASE_URL: the given value, else the first ingress host, else empty (taken from each request). */}}
{{- define "ipt.publicBaseUrl" -}}
{{- if .Values.publicBaseUrl }}
{{- .Values.publicBaseUrl | trimSuffix "/" }}
{{- else if and .Values.api.ingress.enabled .Values.api.ingress.hosts }}
{{- $host := (first .Values.api.ingress.hosts).host }}
{{- $scheme := "http" }}
{{- range .Values.api.ingress.tls }}
{{- if has $host .hosts }}
{{- $scheme = "https" }}
{{- end }}
{{- end }}
{{- printf "%s://%s" $scheme $host }}
{{- end }}
{{- end }}

{{/*
Refuse values that would deploy a service that cannot work or is unsafe. Included once, by the
ConfigMap, which every install renders.
*/}}
{{- define "ipt.validateValues" -}}
{{- if and (not .Values.database.url) (not .Values.database.existingSecret) }}
{{- fail "\n\nipt: an external PostgreSQL is required (this chart has no database subchart).\n  Set database.url, e.g. --set database.url=postgresql://ipt:PASSWORD@db.example.org:5432/ipt\n  or database.existingSecret: the name of a Secret whose key database.existingSecretKey (default \"database-url\") holds the URL." }}
{{- end }}
{{- if ne .Values.auth.mode "jwt" }}
{{- fail "\n\nipt: auth.mode must be \"jwt\"; IPT_AUTH_MODE=disabled is for local development only and is refused by this chart." }}
{{- end }}
{{- $_ := required "\n\nipt: auth.issuer is required: the SMART on FHIR identity provider's issuer URL (IPT_AUTH_ISSUER)." .Values.auth.issuer }}
{{- $_ = required "\n\nipt: auth.jwks is required: the URL of the identity provider's JSON Web Key Set (IPT_AUTH_JWKS)." .Values.auth.jwks }}
{{- $_ = required "\n\nipt: auth.audience is required when publicBaseUrl is empty (and no ingress host gives it): tokens must be issued for this service (IPT_AUTH_AUDIENCE), and an empty audience would accept tokens issued for any API." (include "ipt.auth.audience" .) }}
{{- if .Values.nats.enabled }}
{{- $_ = required "\n\nipt: nats.url is required when nats.enabled is true (IPT_NATS_URL)." .Values.nats.url }}
{{- end }}
{{- if .Values.otel.enabled }}
{{- $_ = required "\n\nipt: otel.endpoint is required when otel.enabled is true (OTEL_EXPORTER_OTLP_ENDPOINT)." .Values.otel.endpoint }}
{{- end }}
{{- with .Values.api.autoscaling }}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) }}
{{- fail (printf "\n\nipt: api.autoscaling.minReplicas (%d) is greater than api.autoscaling.maxReplicas (%d)." (int .minReplicas) (int .maxReplicas)) }}
{{- end }}
{{- end }}
{{- $overrides := keys .Values.extraEnv }}
{{- range concat .Values.api.extraEnvVars .Values.worker.extraEnvVars }}
{{- $overrides = append $overrides .name }}
{{- end }}
{{- if has "IPT_AUTH_MODE" $overrides }}
{{- fail "\n\nipt: IPT_AUTH_MODE cannot be overridden through extraEnv or extraEnvVars; the chart runs with auth.mode=jwt only." }}
{{- end }}
{{- end }}

{{/* Non-secret environment shared by every container, as a YAML map of name to string. Chart
settings override extraEnv entries of the same name. */}}
{{- define "ipt.configData" -}}
{{- $config := dict }}
{{- range $name, $value := .Values.extraEnv }}
{{- $_ := set $config $name (toString $value) }}
{{- end }}
{{- $_ := set $config "IPT_API_HOST" "0.0.0.0" }}
{{- $_ = set $config "IPT_API_PORT" (toString .Values.api.containerPort) }}
{{- with include "ipt.publicBaseUrl" . }}
{{- $_ = set $config "IPT_PUBLIC_BASE_URL" . }}
{{- end }}
{{- $_ = set $config "IPT_ALLOWED_HOSTS" (include "ipt.allowedHosts" .) }}
{{- $_ = set $config "IPT_MAX_BODY_BYTES" (toString (int .Values.limits.maxBodyBytes)) }}
{{- $_ = set $config "IPT_MAX_SEARCH_PARAMS" (toString (int .Values.limits.maxSearchParams)) }}
{{- $_ = set $config "IPT_MAX_SEARCH_VALUES" (toString (int .Values.limits.maxSearchValues)) }}
{{- $_ = set $config "IPT_STATEMENT_TIMEOUT_MS" (toString (int .Values.limits.statementTimeoutMs)) }}
{{- $_ = set $config "IPT_AUTH_MODE" .Values.auth.mode }}
{{- $_ = set $config "IPT_AUTH_ISSUER" .Values.auth.issuer }}
{{- with include "ipt.auth.audience" . }}
{{- $_ = set $config "IPT_AUTH_AUDIENCE" . }}
{{- end }}
{{- with .Values.auth.tokenEndpoint }}
{{- $_ = set $config "IPT_AUTH_TOKEN_ENDPOINT" . }}
{{- end }}
{{- with .Values.auth.authorizationEndpoint }}
{{- $_ = set $config "IPT_AUTH_AUTHORIZATION_ENDPOINT" . }}
{{- end }}
{{- with .Values.outbound.allow }}
{{- $_ = set $config "IPT_OUTBOUND_ALLOW" (join "," .) }}
{{- end }}
{{- $_ = set $config "IPT_AUTH_JWKS" .Values.auth.jwks }}
{{- $_ = set $config "IPT_DATABASE_POOL_SIZE" (toString .Values.database.poolSize) }}
{{- $_ = set $config "IPT_METRICS_ENABLED" (toString .Values.metrics.enabled) }}
{{- $_ = set $config "IPT_AUDIT_RETENTION_DAYS" (toString (int .Values.audit.retentionDays)) }}
{{- $_ = set $config "IPT_EXPORT_EXPIRY_S" (toString .Values.bulkExport.expirySeconds) }}
{{- $_ = set $config "IPT_EXPORT_PAGE_SIZE" (toString .Values.bulkExport.pageSize) }}
{{- $_ = set $config "IPT_EXPORT_LEASE_S" (toString .Values.bulkExport.leaseSeconds) }}
{{- $_ = set $config "IPT_EXPORT_RETRY_AFTER_S" (toString .Values.bulkExport.retryAfterSeconds) }}
{{- if .Values.nats.enabled }}
{{- $_ = set $config "IPT_NATS_URL" .Values.nats.url }}
{{- end }}
{{- if .Values.otel.enabled }}
{{- $_ = set $config "OTEL_EXPORTER_OTLP_ENDPOINT" .Values.otel.endpoint }}
{{- $_ = set $config "OTEL_EXPORTER_OTLP_PROTOCOL" .Values.otel.protocol }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The audience tokens must carry: auth.audience, else <publicBaseUrl>/fhir. */}}
{{- define "ipt.auth.audience" -}}
{{- $base := include "ipt.publicBaseUrl" . }}
{{- if .Values.auth.audience }}
{{- .Values.auth.audience }}
{{- else if $base }}
{{- printf "%s/fhir" $base }}
{{- end }}
{{- end }}

{{/* IPT_SECRETS_KEYS as an EnvVar (keys sealing webhook secrets at rest); nothing when unset. */}}
{{- define "ipt.env.secretsKeys" -}}
{{- if or .Values.webhooks.existingSecret .Values.webhooks.signingKey -}}
- name: IPT_SECRETS_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ default (include "ipt.fullname" .) .Values.webhooks.existingSecret }}
      key: {{ ternary .Values.webhooks.existingSecretKey "webhook-secret-key" (not (empty .Values.webhooks.existingSecret)) }}
{{- end }}
{{- end }}

{{/* Secret and key holding DATABASE_URL: the existing Secret, or the chart's. */}}
{{- define "ipt.database.secretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- include "ipt.fullname" . }}
{{- end }}
{{- end }}

{{- define "ipt.database.secretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else -}}
database-url
{{- end }}
{{- end }}

{{/* Whether the chart's own Secret has anything to hold. */}}
{{- define "ipt.secret.needed" -}}
{{- if or (not .Values.database.existingSecret) (and .Values.webhooks.signingKey (not .Values.webhooks.existingSecret)) .Values.ehr.credentials -}}
true
{{- end }}
{{- end }}

{{/* DATABASE_URL as an EnvVar; secretName overrides the Secret (the migrations hook has its own). */}}
{{- define "ipt.env.databaseUrl" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ default (include "ipt.database.secretName" .context) .secretName }}
      key: {{ include "ipt.database.secretKey" .context }}
{{- end }}

{{/* OpenTelemetry identity of a container: service name and resource attributes (with the pod name). */}}
{{- define "ipt.env.otel" -}}
{{- $attributes := dict
      "service.namespace" "ipt-care-service"
      "service.version" (include "ipt.imageTag" .context)
      "k8s.namespace.name" .context.Release.Namespace
      "k8s.pod.name" "$(K8S_POD_NAME)" }}
{{- $attributes = merge (deepCopy .context.Values.otel.resourceAttributes) $attributes }}
{{- $pairs := list }}
{{- range $key, $value := $attributes }}
{{- $pairs = append $pairs (printf "%s=%s" $key (toString $value)) }}
{{- end -}}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_SERVICE_NAME
  value: {{ printf "ipt-%s" .component | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $pairs | quote }}
{{- end }}

{{/* imagePullSecrets of a pod spec; nothing when there are none. */}}
{{- define "ipt.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Pod template metadata of the api and worker Deployments:
(dict "context" $ "component" "api" "values" .Values.api "annotations" $extraAnnotations). */}}
{{- define "ipt.deploymentPodMetadata" -}}
{{- $ctx := .context -}}
labels:
  {{- include "ipt.labels" . | nindent 2 }}
  {{- with .values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  # Roll the pods when their configuration or credentials change.
  checksum/config: {{ include (print $ctx.Template.BasePath "/configmap.yaml") $ctx | sha256sum }}
  checksum/secret: {{ include (print $ctx.Template.BasePath "/secret.yaml") $ctx | sha256sum }}
  {{- with merge (dict) (default (dict) .annotations) .values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Pod spec fields the api and worker Deployments share: identity, security, placement.
(dict "context" $ "component" "api" "values" .Values.api) */}}
{{- define "ipt.deploymentPodSpec" -}}
{{- $ctx := .context -}}
serviceAccountName: {{ include "ipt.serviceAccountName" $ctx }}
automountServiceAccountToken: {{ $ctx.Values.serviceAccount.automountServiceAccountToken }}
{{- with include "ipt.imagePullSecrets" $ctx }}
{{ . }}
{{- end }}
{{- with include "ipt.podSecurityContext" $ctx }}
{{ . }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with include "ipt.topologySpreadConstraints" (dict "context" $ctx "component" .component "constraints" .values.topologySpreadConstraints) }}
{{ . }}
{{- end }}
{{- end }}

{{/* Pod-level security context; nothing when disabled. */}}
{{- define "ipt.podSecurityContext" -}}
{{- with .Values.podSecurityContext }}
{{- if .enabled -}}
securityContext:
  runAsNonRoot: {{ .runAsNonRoot }}
  runAsUser: {{ .runAsUser }}
  runAsGroup: {{ .runAsGroup }}
  fsGroup: {{ .fsGroup }}
  seccompProfile:
    type: {{ .seccompProfileType }}
{{- end }}
{{- end }}
{{- end }}

{{/* Container-level security context; nothing when disabled. */}}
{{- define "ipt.containerSecurityContext" -}}
{{- with .Values.containerSecurityContext }}
{{- if .enabled -}}
securityContext:
  readOnlyRootFilesystem: {{ .readOnlyRootFilesystem }}
  allowPrivilegeEscalation: {{ .allowPrivilegeEscalation }}
  runAsNonRoot: {{ .runAsNonRoot }}
  runAsUser: {{ .runAsUser }}
  runAsGroup: {{ .runAsGroup }}
  capabilities:
    drop: {{- toYaml .capabilitiesDrop | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Volumes: the writable /tmp every container gets (the root filesystem is read-only), plus extraVolumes. */}}
{{- define "ipt.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpDirSizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ipt.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* topologySpreadConstraints of a component; each gets the component's labelSelector unless it has one. */}}
{{- define "ipt.topologySpreadConstraints" -}}
{{- $selector := dict "matchLabels" (include "ipt.selectorLabels" . | fromYaml) }}
{{- with .constraints -}}
topologySpreadConstraints:
{{- range . }}
  - {{ toYaml (merge (dict) . (dict "labelSelector" $selector)) | indent 4 | trim }}
{{- end }}
{{- end }}
{{- end }}

{{/* A probe from values: the settings without "enabled", plus what to call. */}}
{{- define "ipt.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: http
{{ omit .probe "enabled" | toYaml }}
{{- end }}

{{/* PodDisruptionBudget spec limits: minAvailable when given, otherwise maxUnavailable. */}}
{{- define "ipt.pdbLimits" -}}
{{- if not (eq (toString .minAvailable) "") -}}
minAvailable: {{ .minAvailable }}
{{- else -}}
maxUnavailable: {{ .maxUnavailable }}
{{- end }}
{{- end }}

{{/* One NetworkPolicy egress rule to a target of networkPolicy.egress; nothing when it has no ports. */}}
{{- define "ipt.networkPolicy.egressRule" -}}
{{- if .ports -}}
- ports:
  {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
  {{- end }}
  {{- if or .cidrs .peers }}
  to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- with .peers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Egress to DNS, over UDP and TCP. */}}
{{- define "ipt.networkPolicy.dnsRule" -}}
{{- with .Values.networkPolicy.dns -}}
- ports:
  {{- range .ports }}
    - port: {{ . }}
      protocol: UDP
    - port: {{ . }}
      protocol: TCP
  {{- end }}
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
