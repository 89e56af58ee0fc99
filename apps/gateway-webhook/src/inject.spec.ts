import type { V1Pod } from '@kubernetes/client-node';
import {
  GATEWAY_ANNOTATION,
  parseGoBool,
  reviewLogLevel,
  review,
  type AdmissionRequest,
  type InjectConfig,
  type JsonPatchOp,
} from './inject';

const CFG: InjectConfig = {
  setGatewayDefault: true,
  label: { key: 'setGateway' },
  annotation: { key: 'setGateway' },
  gateway: 'pod-gateway.vpn.svc.cluster.local',
  dns: ['172.16.0.1'],
  dnsPolicy: 'None',
  resolv: {
    nameservers: ['10.0.0.10'],
    search: ['vpn.svc.cluster.local', 'svc.cluster.local', 'cluster.local'],
    options: [{ name: 'ndots', value: '5' }, { name: 'edns0' }],
  },
  init: { image: 'knet/client-init:1', pullPolicy: 'IfNotPresent', mountPoint: '/config' },
  sidecar: {
    image: 'knet/client-sidecar:1',
    pullPolicy: 'IfNotPresent',
    mountPoint: '/config',
    asInit: false,
  },
  configmapName: 'pod-gateway',
  gatewayId: 'pod-gateway.vpn',
  ownNamespace: 'vpn',
};

function pod(meta: V1Pod['metadata'] = {}, spec: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'app', ...meta },
    spec: { containers: [{ name: 'app', image: 'app' }], ...spec },
  };
}

function request(object: unknown, over: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    uid: 'u1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
    namespace: 'media',
    object,
    ...over,
  };
}

/** Applies the add-only JSON patch the way the API server does (RFC 6902 add). */
function apply(obj: V1Pod, ops: JsonPatchOp[]): V1Pod {
  const out = structuredClone(obj) as unknown as Record<string, unknown>;
  for (const op of ops) {
    const keys = op.path
      .split('/')
      .slice(1)
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop() as string;
    let parent: Record<string, unknown> | unknown[] = out;
    for (const k of keys) parent = (parent as Record<string, unknown>)[k] as Record<string, unknown>;
    if (Array.isArray(parent)) {
      if (last === '-') parent.push(op.value);
      else {
        const i = Number(last);
        if (!(i >= 0 && i <= parent.length)) throw new Error(`index ${last} out of range in ${op.path}`);
        parent.splice(i, 0, op.value);
      }
    } else {
      if (parent === undefined) throw new Error(`no parent for ${op.path}`);
      parent[last] = op.value;
    }
  }
  return out as unknown as V1Pod;
}

function mutated(p: V1Pod, cfg: InjectConfig = CFG, namespace = 'media'): V1Pod {
  const r = review(request(p, { namespace }), cfg);
  if (r.result !== 'mutated') throw new Error(`expected a mutation, got ${JSON.stringify(r)}`);
  return apply(p, r.patch);
}

describe('reviewLogLevel', () => {
  it.each<[Parameters<typeof reviewLogLevel>[0], string]>([
    [{ result: 'rejected', reason: 'invalid-label', message: 'x' }, 'warn'],
    [{ result: 'skipped', reason: 'host-network' }, 'warn'],
    [{ result: 'mutated', reason: 'default', patch: [] }, 'info'],
    [{ result: 'skipped', reason: 'not-selected' }, 'debug'],
  ])('%j → %s', (r, level) => expect(reviewLogLevel(r)).toBe(level));
});

describe('parseGoBool (strconv.ParseBool)', () => {
  it.each([
    ['1', true],
    ['t', true],
    ['T', true],
    ['TRUE', true],
    ['true', true],
    ['True', true],
    ['0', false],
    ['f', false],
    ['F', false],
    ['FALSE', false],
    ['false', false],
    ['False', false],
    ['yes', undefined],
    ['tRUE', undefined],
    ['', undefined],
    [' true', undefined],
  ])('%j → %j', (v, want) => expect(parseGoBool(v)).toBe(want));
});

describe('selection (default, then label, then annotation)', () => {
  const labelValue: InjectConfig = {
    ...CFG,
    setGatewayDefault: false,
    label: { key: 'gw', value: 'b' },
    annotation: { key: 'gw', value: 'b' },
  };
  it.each<[string, InjectConfig, V1Pod['metadata'], string]>([
    ['default on, nothing set', CFG, {}, 'mutated/default'],
    ['default off, nothing set', { ...CFG, setGatewayDefault: false }, {}, 'skipped/not-selected'],
    ['label false', CFG, { labels: { setGateway: 'false' } }, 'skipped/opted-out'],
    ['label 0 (a Go boolean)', CFG, { labels: { setGateway: '0' } }, 'skipped/opted-out'],
    [
      'label true, default off',
      { ...CFG, setGatewayDefault: false },
      { labels: { setGateway: 'True' } },
      'mutated/label',
    ],
    [
      'annotation overrides label (false wins)',
      CFG,
      { labels: { setGateway: 'true' }, annotations: { setGateway: 'f' } },
      'skipped/opted-out',
    ],
    [
      'annotation overrides label (true wins)',
      CFG,
      { labels: { setGateway: 'false' }, annotations: { setGateway: 'true' } },
      'mutated/annotation',
    ],
    ['invalid label', CFG, { labels: { setGateway: 'maybe' } }, 'rejected/invalid-label'],
    ['invalid annotation', CFG, { annotations: { setGateway: 'yes' } }, 'rejected/invalid-annotation'],
    [
      'invalid label even when the annotation would decide',
      CFG,
      { labels: { setGateway: 'x' }, annotations: { setGateway: 'true' } },
      'rejected/invalid-label',
    ],
    ['value match', labelValue, { labels: { gw: 'b' } }, 'mutated/label'],
    ['value mismatch is no, not an error', labelValue, { labels: { gw: 'a' } }, 'skipped/opted-out'],
    ['value mode: "true" is just another value', labelValue, { labels: { gw: 'true' } }, 'skipped/opted-out'],
    [
      'value mode: annotation overrides a matching label',
      labelValue,
      { labels: { gw: 'b' }, annotations: { gw: 'a' } },
      'skipped/opted-out',
    ],
    [
      'label key not configured: ignored',
      { ...CFG, label: undefined },
      { labels: { setGateway: 'maybe' } },
      'mutated/default',
    ],
    ['the gateway pod', CFG, { labels: { 'pod-gateway.knet.dev/role': 'gateway' } }, 'skipped/gateway-pod'],
    ['the webhook pod', CFG, { labels: { 'pod-gateway.knet.dev/role': 'webhook' } }, 'skipped/gateway-pod'],
    [
      'only the annotation, no containers (copied from a routed pod): routed',
      CFG,
      { annotations: { [GATEWAY_ANNOTATION]: 'pod-gateway.vpn' } },
      'mutated/default',
    ],
    [
      'routed by another gateway',
      CFG,
      { annotations: { [GATEWAY_ANNOTATION]: 'other.vpn' } },
      'rejected/other-gateway',
    ],
    [
      'another gateway, but this one does not select it',
      { ...CFG, setGatewayDefault: false },
      { annotations: { [GATEWAY_ANNOTATION]: 'other.vpn' } },
      'skipped/not-selected',
    ],
  ])('%s', (_, cfg, meta, want) => {
    const r = review(request(pod(meta)), cfg);
    expect(`${r.result}/${r.reason}`).toBe(want);
  });

  it('names the label and the value when it refuses a pod', () => {
    const r = review(request(pod({ labels: { setGateway: 'maybe' } })), CFG);
    expect(r).toMatchObject({
      result: 'rejected',
      message: expect.stringContaining('label setGateway="maybe" is not a boolean'),
    });
  });

  it.each<[string, AdmissionRequest]>([
    ['not a pod', request({}, { kind: { group: '', version: 'v1', kind: 'Service' } })],
    [
      'a pod in another group',
      request(pod(), { kind: { group: 'example.com', version: 'v1', kind: 'Pod' } }),
    ],
    ['an update', request(pod(), { operation: 'UPDATE' })],
    ['no object', request(undefined)],
    ['an array object', request([])],
  ])('leaves %s alone', (_, req) =>
    expect(review(req, CFG)).toEqual({ result: 'skipped', reason: 'not-a-pod-create' }),
  );

  it("never routes the gateway's own namespace, nor host-network pods", () => {
    expect(review(request(pod(), { namespace: 'vpn' }), CFG)).toMatchObject({ reason: 'gateway-namespace' });
    expect(review(request(pod({}, { hostNetwork: true })), CFG)).toMatchObject({ reason: 'host-network' });
  });

  it('leaves pods with the containers or the volume already in place (by hand, or by the reference webhook)', () => {
    for (const spec of [
      { initContainers: [{ name: 'gateway-init', image: 'x' }] },
      {
        containers: [
          { name: 'app', image: 'a' },
          { name: 'gateway-sidecar', image: 'x' },
        ],
      },
      { volumes: [{ name: 'gateway-configmap', configMap: { name: 'x' } }] },
    ]) {
      expect(review(request(pod({}, spec)), CFG)).toMatchObject({
        result: 'skipped',
        reason: 'already-injected',
      });
    }
  });
});

describe('the patch', () => {
  it('puts client-init first, the sidecar last, the volume, DNS and the annotation', () => {
    const out = mutated(
      pod(
        { annotations: { keep: 'me' } },
        {
          initContainers: [{ name: 'migrate', image: 'm' }],
          volumes: [{ name: 'data', emptyDir: {} }],
          dnsConfig: { options: [{ name: 'ndots', value: '2' }], searches: ['corp.example'] },
        },
      ),
    );
    expect(out.spec?.initContainers?.map((c) => c.name)).toEqual(['gateway-init', 'migrate']);
    expect(out.spec?.containers.map((c) => c.name)).toEqual(['app', 'gateway-sidecar']);
    expect(out.spec?.volumes).toEqual([
      { name: 'data', emptyDir: {} },
      { name: 'gateway-configmap', configMap: { name: 'pod-gateway', defaultMode: 0o444 } },
      { name: 'gateway-no-token', emptyDir: {} },
    ]);
    expect(out.spec?.dnsPolicy).toBe('None');
    // The searches are the webhook's with the namespace fixed, then the pod's; the pod's ndots wins.
    expect(out.spec?.dnsConfig).toEqual({
      nameservers: ['172.16.0.1'],
      searches: ['media.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example'],
      options: [{ name: 'edns0' }, { name: 'ndots', value: '2' }],
    });
    expect(out.metadata?.annotations).toEqual({ keep: 'me', [GATEWAY_ANNOTATION]: 'pod-gateway.vpn' });
    // Only the injected containers get capabilities; the user's are untouched.
    expect(out.spec?.containers[0]).toEqual({ name: 'app', image: 'app' });
    expect(out.spec?.initContainers?.[1]).toEqual({ name: 'migrate', image: 'm' });
  });

  it('gives the injected containers env, mounts and a narrow securityContext', () => {
    const [init] = mutated(pod()).spec?.initContainers ?? [];
    expect(init).toEqual({
      name: 'gateway-init',
      image: 'knet/client-init:1',
      imagePullPolicy: 'IfNotPresent',
      env: [
        { name: 'gateway', value: 'pod-gateway.vpn.svc.cluster.local' },
        { name: 'DNS', value: '172.16.0.1' },
        { name: 'DNS_ips', value: '172.16.0.1' },
        { name: 'K8S_DNS_ips', value: '10.0.0.10' },
        { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      ],
      securityContext: {
        runAsUser: 0,
        runAsNonRoot: false,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        privileged: false,
        capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE'] },
        seccompProfile: { type: 'RuntimeDefault' },
      },
      volumeMounts: [
        { name: 'gateway-configmap', mountPath: '/config', readOnly: true },
        // Masks the token the ServiceAccount admission plugin would mount: client-init calls no API.
        {
          name: 'gateway-no-token',
          mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
          readOnly: true,
        },
      ],
    });
  });

  it("gives a classic sidecar its pod's name and the pod's token (to end with a Job), never client-init", () => {
    const token = {
      name: 'kube-api-access-x1',
      projected: { sources: [{ serviceAccountToken: { path: 'token' } }] },
    };
    const out = mutated(pod({}, { volumes: [token] }));
    const sidecar = out.spec?.containers.find((c) => c.name === 'gateway-sidecar');
    expect(sidecar?.env).toContainEqual({
      name: 'POD_NAME',
      valueFrom: { fieldRef: { fieldPath: 'metadata.name' } },
    });
    expect(sidecar?.volumeMounts).toContainEqual({
      name: 'kube-api-access-x1',
      mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
      readOnly: true,
    });
    expect(out.spec?.initContainers?.[0]?.volumeMounts?.map((m) => m.name)).toEqual([
      'gateway-configmap',
      'gateway-no-token',
    ]);
  });

  it('makes a native sidecar second among init containers, with no token and no pod name', () => {
    const cfg = { ...CFG, sidecar: { ...CFG.sidecar, asInit: true } };
    const token = {
      name: 'kube-api-access-x1',
      projected: { sources: [{ serviceAccountToken: { path: 'token' } }] },
    };
    for (const initContainers of [undefined, [{ name: 'migrate', image: 'm' }]]) {
      const out = mutated(pod({}, { volumes: [token], ...(initContainers ? { initContainers } : {}) }), cfg);
      expect(out.spec?.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([
        ['gateway-init', undefined],
        ['gateway-sidecar', 'Always'],
        ...(initContainers ? [['migrate', undefined]] : []),
      ]);
      expect(out.spec?.containers.map((c) => c.name)).toEqual(['app']);
      const sidecar = out.spec?.initContainers?.[1];
      expect(sidecar?.volumeMounts?.map((m) => m.name)).toEqual(['gateway-configmap', 'gateway-no-token']);
      expect(sidecar?.env?.map((e) => e.name)).not.toContain('POD_NAME');
    }
  });

  it('takes the namespace from the request when the pod has none (generateName pods)', () => {
    expect(
      mutated(pod({ name: undefined, generateName: 'job-' }), CFG, 'batch').spec?.dnsConfig?.searches?.[0],
    ).toBe('batch.svc.cluster.local');
  });

  it('keeps DNS alone without --DNS, and only sets nameservers with a policy other than None', () => {
    expect(mutated(pod(), { ...CFG, dns: [], dnsPolicy: undefined }).spec?.dnsConfig).toBeUndefined();
    const own = { searches: ['corp.example'], options: [{ name: 'ndots', value: '1' }] };
    expect(mutated(pod({}, { dnsConfig: own }), { ...CFG, dnsPolicy: 'ClusterFirst' }).spec).toMatchObject({
      dnsPolicy: 'ClusterFirst',
      dnsConfig: { ...own, nameservers: ['172.16.0.1'] },
    });
  });

  it('drops empty and "." searches (k3s, gac#54) and uses the image entrypoint unless a command is set', () => {
    const cfg = {
      ...CFG,
      resolv: { ...CFG.resolv, search: ['', '.', 'x.svc.k3s.local'] },
      init: { ...CFG.init, command: '/bin/client_init.sh' },
    };
    const out = mutated(pod(), cfg);
    expect(out.spec?.dnsConfig?.searches).toEqual(['media.svc.k3s.local']);
    expect(out.spec?.initContainers?.[0]?.command).toEqual(['/bin/client_init.sh']);
    expect(out.spec?.containers[1]?.command).toBeUndefined();
  });

  it('is idempotent: the patched pod, reviewed again, is left alone', () => {
    const once = mutated(pod());
    expect(review(request(once), CFG)).toEqual({ result: 'skipped', reason: 'already-injected' });
  });
});
