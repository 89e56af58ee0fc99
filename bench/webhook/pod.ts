import { randomUUID } from 'node:crypto';

/**
 * The pods the bench sends: a web app as a Deployment would create it (an init container, the app
 * and a metrics exporter; env from fields, Secrets and ConfigMaps; probes, resources, five
 * volumes). `podObject` is what a client POSTs; `admissionReview` wraps it as the API server sends
 * it to a webhook, with what the API server has filled in by then (defaults, the ServiceAccount
 * plugin's token volume and mounts, managedFields), ~7 KB of JSON.
 *
 * Mix: every fifth pod is labelled `setGateway: "false"` (opted out: skipped); the others have no
 * label and are routed by `--setGatewayDefault` (mutated: a JSONPatch of ~2.3 KB in base64).
 */
export const OPT_OUT_EVERY = 5;

export function isRouted(i: number): boolean {
  return i % OPT_OUT_EVERY !== 0;
}

const env = (name: string, value: string) => ({ name, value });

function container(name: string, image: string, extra: Record<string, unknown>, defaults: boolean) {
  return {
    name,
    image,
    ...extra,
    ...(defaults
      ? {
          imagePullPolicy: 'IfNotPresent',
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
        }
      : {}),
  };
}

/** The Pod as a client creates it; `defaults` adds what the API server fills in before admission. */
export function podObject(name: string, namespace: string, i: number, defaults = false): object {
  const token = 'kube-api-access-x7k2q';
  const tokenMount = defaults
    ? [{ name: token, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }]
    : [];
  const probe = (path: string, port: number, period: number) => ({
    httpGet: { path, port, scheme: 'HTTP' },
    initialDelaySeconds: 5,
    periodSeconds: period,
    timeoutSeconds: 2,
    failureThreshold: 3,
    ...(defaults ? { successThreshold: 1 } : {}),
  });
  const labels: Record<string, string> = {
    'app.kubernetes.io/name': 'media-web',
    'app.kubernetes.io/instance': 'media-web',
    'app.kubernetes.io/component': 'frontend',
    'app.kubernetes.io/version': '4.12.3',
    'pod-template-hash': '6d9f7c8b5d',
  };
  if (!isRouted(i)) labels['setGateway'] = 'false';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      labels,
      annotations: {
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '9102',
        'checksum/config': '3f1c9a0e6b7d2c4e8f5a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e',
        'kubectl.kubernetes.io/default-container': 'web',
      },
      ...(defaults
        ? {
            managedFields: [
              {
                manager: 'kube-controller-manager',
                operation: 'Update',
                apiVersion: 'v1',
                time: '2026-12-05T12:00:00Z',
                fieldsType: 'FieldsV1',
                fieldsV1: {
                  'f:metadata': { 'f:labels': { '.': {}, 'f:app.kubernetes.io/name': {} } },
                  'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:image': {} } } },
                },
              },
            ],
          }
        : {}),
    },
    spec: {
      securityContext: { fsGroup: 1000, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      initContainers: [
        container(
          'migrate',
          'registry.example.com/media/web:4.12.3',
          {
            command: ['/app/bin/migrate', '--wait-for-db'],
            envFrom: [{ secretRef: { name: 'media-web-db' } }],
            resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '128Mi' } },
            volumeMounts: [{ name: 'config', mountPath: '/app/config', readOnly: true }, ...tokenMount],
          },
          defaults,
        ),
      ],
      containers: [
        container(
          'web',
          'registry.example.com/media/web:4.12.3',
          {
            args: ['--config=/app/config/web.yaml', '--listen=:8080', '--log-format=json'],
            ports: [
              { name: 'http', containerPort: 8080, protocol: 'TCP' },
              { name: 'metrics', containerPort: 9102, protocol: 'TCP' },
            ],
            env: [
              env('TZ', 'Europe/Berlin'),
              env('LOG_LEVEL', 'info'),
              env('WEB_BASE_URL', 'https://media.example.com'),
              env('WEB_CACHE_DIR', '/cache'),
              env('WEB_MAX_UPLOAD', '2Gi'),
              { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
              { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
              {
                name: 'DB_PASSWORD',
                valueFrom: { secretKeyRef: { name: 'media-web-db', key: 'password' } },
              },
              {
                name: 'API_KEY',
                valueFrom: { secretKeyRef: { name: 'media-web-api', key: 'key', optional: true } },
              },
              {
                name: 'FEATURE_FLAGS',
                valueFrom: { configMapKeyRef: { name: 'media-web-flags', key: 'flags' } },
              },
            ],
            envFrom: [{ configMapRef: { name: 'media-web-env' } }],
            resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } },
            livenessProbe: probe('/healthz', 8080, 10),
            readinessProbe: probe('/readyz', 8080, 5),
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              capabilities: { drop: ['ALL'] },
            },
            volumeMounts: [
              { name: 'config', mountPath: '/app/config', readOnly: true },
              { name: 'tls', mountPath: '/app/tls', readOnly: true },
              { name: 'media', mountPath: '/media' },
              { name: 'cache', mountPath: '/cache' },
              ...tokenMount,
            ],
          },
          defaults,
        ),
        container(
          'exporter',
          'registry.example.com/tools/log-exporter:1.8.0',
          {
            args: ['--source=/cache/access.log', '--listen=:9103'],
            env: [env('EXPORTER_INTERVAL', '15s')],
            resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } },
            volumeMounts: [{ name: 'cache', mountPath: '/cache', readOnly: true }, ...tokenMount],
          },
          defaults,
        ),
      ],
      volumes: [
        {
          name: 'config',
          configMap: { name: 'media-web-config', ...(defaults ? { defaultMode: 420 } : {}) },
        },
        { name: 'tls', secret: { secretName: 'media-web-tls', ...(defaults ? { defaultMode: 420 } : {}) } },
        { name: 'media', persistentVolumeClaim: { claimName: 'media-library' } },
        { name: 'cache', emptyDir: { sizeLimit: '2Gi' } },
        ...(defaults
          ? [
              {
                name: token,
                projected: {
                  defaultMode: 420,
                  sources: [
                    { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
                    {
                      configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
                    },
                    {
                      downwardAPI: {
                        items: [
                          {
                            path: 'namespace',
                            fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' },
                          },
                        ],
                      },
                    },
                  ],
                },
              },
            ]
          : []),
      ],
      tolerations: [
        { key: 'media', operator: 'Equal', value: 'true', effect: 'NoSchedule' },
        ...(defaults
          ? [
              {
                key: 'node.kubernetes.io/not-ready',
                operator: 'Exists',
                effect: 'NoExecute',
                tolerationSeconds: 300,
              },
              {
                key: 'node.kubernetes.io/unreachable',
                operator: 'Exists',
                effect: 'NoExecute',
                tolerationSeconds: 300,
              },
            ]
          : []),
      ],
      ...(defaults
        ? {
            restartPolicy: 'Always',
            terminationGracePeriodSeconds: 30,
            dnsPolicy: 'ClusterFirst',
            serviceAccountName: 'default',
            serviceAccount: 'default',
            schedulerName: 'default-scheduler',
            enableServiceLinks: true,
            priority: 0,
            preemptionPolicy: 'PreemptLowerPriority',
          }
        : {}),
    },
  };
}

/** An admission.k8s.io/v1 AdmissionReview for the CREATE of pod `i`, as the API server sends it. */
export function admissionReview(namespace: string, i: number): Buffer {
  const name = `media-web-6d9f7c8b5d-${i.toString(36).padStart(5, '0')}`;
  const gvk = { group: '', version: 'v1', kind: 'Pod' };
  const gvr = { group: '', version: 'v1', resource: 'pods' };
  return Buffer.from(
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: randomUUID(),
        kind: gvk,
        resource: gvr,
        requestKind: gvk,
        requestResource: gvr,
        name,
        namespace,
        operation: 'CREATE',
        userInfo: {
          username: 'system:serviceaccount:kube-system:replicaset-controller',
          uid: '0b7c1e4e-54a8-4d4f-9d2a-3c6f1a9e8b21',
          groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
        },
        object: podObject(name, namespace, i, true),
        oldObject: null,
        dryRun: false,
        options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
      },
    }),
  );
}
