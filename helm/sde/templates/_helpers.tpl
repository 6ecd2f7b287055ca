{{/* Names ------------------------------------------------------------------------ */}}

{{- define "sde.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sde.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Ports: fixed, and the same numbers sde's workspace settings are given. */}}
{{- define "sde.port.public" -}}8000{{- end -}}
{{- define "sde.port.hub" -}}8081{{- end -}}
{{- define "sde.port.airlock" -}}8800{{- end -}}
{{- define "sde.port.opa" -}}8181{{- end -}}
{{- define "sde.port.notebook" -}}8888{{- end -}}

{{/* Labels ----------------------------------------------------------------------- */}}

{{/* Selector labels of one component: (dict "root" $ "component" "hub") */}}
{{- define "sde.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sde.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sde.labels" -}}
{{ include "sde.selectorLabels" . }}
app.kubernetes.io/part-of: sde
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Images ----------------------------------------------------------------------- */}}

{{- define "sde.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* Secrets: only references to the existing Secret, never values. ------------------ */}}

{{- define "sde.secretName" -}}
{{- required "secrets.existingSecret: name the existing Secret holding sde's secrets (the chart never creates one)" .Values.secrets.existingSecret -}}
{{- end -}}

{{/* An env entry from the existing Secret: (dict "root" $ "env" "NAME" "key" "keys-field") */}}
{{- define "sde.secretEnv" -}}
{{- $key := index .root.Values.secrets.keys .key -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "sde.secretName" .root }}
      key: {{ required (printf "secrets.keys.%s: name the key of the existing Secret" .key) $key }}
{{- end -}}

{{/* The lake on object storage ------------------------------------------------------ */}}

{{- define "sde.lakeIsRemote" -}}
{{- if ne .Values.lake.type "pvc" -}}true{{- end -}}
{{- end -}}

{{/* The store's credentials as SDE_LAKE_<OPTION> variables, each from the existing Secret
by secretKeyRef; none when the keys are "" (workload identity). */}}
{{- define "sde.lakeEnv" -}}
{{- if include "sde.lakeIsRemote" . -}}
{{- $keys := .Values.secrets.keys -}}
{{- $pairs := list -}}
{{- if eq .Values.lake.type "s3" -}}
{{- $pairs = list (list "SDE_LAKE_AWS_ACCESS_KEY_ID" "lakeAccessKeyId") (list "SDE_LAKE_AWS_SECRET_ACCESS_KEY" "lakeSecretAccessKey") -}}
{{- if and (not $keys.lakeAccessKeyId) $keys.lakeSecretAccessKey -}}
{{- fail "secrets.keys.lakeAccessKeyId: name it with lakeSecretAccessKey (or leave both empty for workload identity)" -}}
{{- end -}}
{{- if and $keys.lakeAccessKeyId (not $keys.lakeSecretAccessKey) -}}
{{- fail "secrets.keys.lakeSecretAccessKey: name it with lakeAccessKeyId (or leave both empty for workload identity)" -}}
{{- end -}}
{{- else if eq .Values.lake.type "azure" -}}
{{- $pairs = list (list "SDE_LAKE_AZURE_STORAGE_ACCOUNT_KEY" "lakeAzureAccountKey") -}}
{{- else if eq .Values.lake.type "gcs" -}}
{{- if $keys.lakeGcsServiceAccountKey -}}
{{- fail "secrets.keys.lakeGcsServiceAccountKey: sde cannot use a service-account key for a GCS lake yet (its file access, pyarrow, takes none); leave it empty for workload identity" -}}
{{- end -}}
{{- end -}}
{{- range $pairs -}}
{{- if index $keys (index . 1) }}
{{ include "sde.secretEnv" (dict "root" $ "env" (index . 0) "key" (index . 1)) }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The lake's section of config.yaml (plain options only; no credentials). */}}
{{- define "sde.lakeSettings" -}}
{{- $store := .Values.lake.objectStore -}}
{{- $options := dict -}}
{{- if eq .Values.lake.type "s3" -}}
{{- with $store.endpoint }}{{ $_ := set $options "AWS_ENDPOINT_URL" . }}{{ end -}}
{{- with $store.region }}{{ $_ := set $options "AWS_REGION" . }}{{ end -}}
{{- if $store.allowHttp }}{{ $_ := set $options "AWS_ALLOW_HTTP" "true" }}{{ end -}}
{{- else if eq .Values.lake.type "azure" -}}
{{- with $store.accountName }}{{ $_ := set $options "AZURE_STORAGE_ACCOUNT_NAME" . }}{{ end -}}
{{- with $store.endpoint }}{{ $_ := set $options "AZURE_ENDPOINT" . }}{{ end -}}
{{- if $store.allowHttp }}{{ $_ := set $options "AZURE_ALLOW_HTTP" "true" }}{{ end -}}
{{- end -}}
{{- $lake := dict
  "url" (required "lake.objectStore.url: the lake's URL (s3://bucket/prefix, ...) is required with object storage" $store.url)
  "options" $options
  "workspace_credentials" $store.workspaceCredentials
-}}
{{- if eq $store.workspaceCredentials "per_project_secret" -}}
{{- if not (contains "{project}" $store.projectCredentials) -}}
{{- fail "lake.objectStore.projectCredentials must contain {project}: each project has its own credentials" -}}
{{- end -}}
{{- $_ := set $lake "project_credentials" $store.projectCredentials -}}
{{- end -}}
{{- toYaml $lake -}}
{{- end -}}

{{/* Egress to the store (hub, airlock, ingest). */}}
{{- define "sde.lakeEgress" -}}
{{- if include "sde.lakeIsRemote" . -}}
- to:
    {{- include "sde.peers" (dict "peers" .Values.lake.objectStore.egressTo "where" "lake.objectStore.egressTo") | nindent 4 }}
  ports:
    {{- range .Values.lake.objectStore.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}
{{- end -}}

{{/* Pod security: restricted ----------------------------------------------------- */}}

{{- define "sde.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
{{- /* The lake's volume and the emptyDirs writable by the pod's group; ownership changed
only when the volume's root does not match, never a recursive walk of the lake each start. */}}
fsGroup: {{ .Values.runAsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sde.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* NetworkPolicy peers given in values: refused when they would open the internet. */}}
{{- define "sde.peers" -}}
{{- $where := .where -}}
{{- if not .peers -}}
{{- fail (printf "%s: name at least one NetworkPolicy peer (an empty list would allow every address)" $where) -}}
{{- end -}}
{{- range .peers -}}
{{- if not . -}}
{{- fail (printf "%s: an empty peer would allow every address" $where) -}}
{{- end -}}
{{- with .ipBlock -}}
{{- $cidr := toString .cidr -}}
{{- if or (eq $cidr "0.0.0.0/0") (eq $cidr "::/0") (hasSuffix "/0" $cidr) -}}
{{- fail (printf "%s: %s would allow the whole internet; name your addresses" $where $cidr) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml .peers -}}
{{- end -}}

{{/* Egress to cluster DNS only. */}}
{{- define "sde.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.dns.podSelector | nindent 10 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}

{{/* Egress to the control database. */}}
{{- define "sde.databaseEgress" -}}
- to:
    {{- include "sde.peers" (dict "peers" .Values.database.egressTo "where" "database.egressTo") | nindent 4 }}
  ports:
    - {protocol: TCP, port: {{ .Values.database.port }}}
{{- end -}}

{{/* Egress to OPA. */}}
{{- define "sde.opaEgress" -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "sde.selectorLabels" (dict "root" . "component" "opa") | nindent 10 }}
  ports:
    - {protocol: TCP, port: {{ include "sde.port.opa" . }}}
{{- end -}}

{{/* The sde home, assembled per pod ------------------------------------------------ */}}

{{- define "sde.homeInitContainer" -}}
- name: prepare-home
  image: {{ include "sde.image" .Values.images.sde }}
  imagePullPolicy: {{ .Values.images.sde.pullPolicy }}
  command: [python, /etc/sde/bin/prepare_home.py]
  env:
    - {name: SDE_HOME, value: /srv/sde/run/home}
    - {name: SDE_CONFIG_TEMPLATE, value: /etc/sde/config/config.yaml}
    - {name: SDE_DATA, value: /srv/sde/data}
    {{- include "sde.secretEnv" (dict "root" . "env" "SDE_MASTER_KEY" "key" "masterKey") | nindent 4 }}
    {{- include "sde.secretEnv" (dict "root" . "env" "SDE_DATABASE_URL" "key" "databaseUrl") | nindent 4 }}
    {{- if .Values.database.caCertificate.configMap }}
    - {name: SDE_DATABASE_CA, value: {{ include "sde.databaseCaFile" . | quote }}}
    {{- end }}
  securityContext:
    {{- include "sde.containerSecurityContext" . | nindent 4 }}
  resources:
    requests: {cpu: 50m, memory: 64Mi, ephemeral-storage: 16Mi}
    limits: {cpu: 500m, memory: 256Mi, ephemeral-storage: 64Mi}
  volumeMounts:
    - {name: home, mountPath: /srv/sde/run}
    - {name: data, mountPath: /srv/sde/data}
    - {name: tmp, mountPath: /tmp}
    - {name: config, mountPath: /etc/sde/config, readOnly: true}
    - {name: scripts, mountPath: /etc/sde/bin, readOnly: true}
    {{- include "sde.databaseCaMount" . | nindent 4 }}
{{- end -}}

{{- define "sde.homeMounts" -}}
- {name: home, mountPath: /srv/sde/run}
- {name: data, mountPath: /srv/sde/data}
- {name: tmp, mountPath: /tmp}
{{- include "sde.databaseCaMount" . }}
{{- end -}}

{{/* The control database's CA certificate (database.caCertificate), for sslmode=verify-full:
a ConfigMap's key mounted read-only; prepare_home.py adds it to the database URL as
sslrootcert, the migration Job gives it to libpq as PGSSLROOTCERT. */}}
{{- define "sde.databaseCaDir" -}}/etc/sde/database-ca{{- end -}}
{{- define "sde.databaseCaFile" -}}
{{- include "sde.databaseCaDir" . }}/{{ .Values.database.caCertificate.key }}
{{- end -}}
{{- define "sde.databaseCaMount" -}}
{{- if .Values.database.caCertificate.configMap }}
- {name: database-ca, mountPath: {{ include "sde.databaseCaDir" . }}, readOnly: true}
{{- end }}
{{- end -}}
{{- define "sde.databaseCaVolume" -}}
{{- with .Values.database.caCertificate }}
{{- if .configMap }}
- name: database-ca
  configMap:
    name: {{ .configMap }}
    items:
      - {key: {{ .key | quote }}, path: {{ .key | quote }}}
{{- end }}
{{- end }}
{{- end -}}

{{- define "sde.homeVolumes" -}}
- name: home
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
- name: data
  persistentVolumeClaim:
    claimName: {{ include "sde.lakeClaim" . }}
- name: config
  configMap:
    name: {{ include "sde.fullname" . }}-config
    items:
      - {key: config.yaml, path: config.yaml}
- name: scripts
  configMap:
    name: {{ include "sde.fullname" . }}-config
    items:
      - {key: prepare_home.py, path: prepare_home.py}
{{- include "sde.databaseCaVolume" . }}
{{- end -}}

{{- define "sde.lakeClaim" -}}
{{- if .Values.lake.persistence.existingClaim -}}
{{- .Values.lake.persistence.existingClaim -}}
{{- else -}}
{{- include "sde.fullname" . }}-lake
{{- end -}}
{{- end -}}

{{/* Scheduling bits: (dict "values" .Values.hub) */}}
{{- define "sde.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "sde.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}
