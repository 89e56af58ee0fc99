import { z } from 'zod';
import { createProgram, schemas } from '@knet/runtime';

/** `a,b, c` → ['a','b','c'] (empty → all scenes). */
const sceneList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

export const program = createProgram({
  name: 'lab',
  description:
    'The whole knet system live on this machine: a host and a member control plane (real etcd, kube-apiserver, ' +
    'kube-controller-manager), tower-proxy and tower-agent tunnelling the member to the host, and a pod-gateway ' +
    'world in network namespaces (a gateway pod with a VPN link to an "internet" host, client pods admitted by ' +
    'gateway-webhook through the member API server). Shows each proof in a live table with the command to poke ' +
    'at it by hand; Ctrl-C tears everything down. Needs root (network namespaces) and iproute2. Only loopback ' +
    'and network namespaces the lab creates (documentation ranges) are touched. Tower and pod-gateway run as ' +
    'pods of their helm charts on a real node (kubelet, containerd, runc, kube-proxy) in a network namespace of ' +
    'its own, or with --with-node=false as processes against the two control planes.',
  exitCodes: {
    0: 'every proof passed (interactive: every proof was passing at Ctrl-C) and nothing was left behind',
    1: 'a proof or a scene failed, or the teardown failed or left something (named)',
    2: 'cannot run here: not root, no `ip netns`, a lab already running from the folder, or a bad flag; nothing created',
    130: 'Ctrl-C (or SIGTERM) while scenes were still coming up; torn down',
  },
  options: {
    check: {
      flag: '--check',
      env: 'KNET_LAB_CHECK',
      description:
        'run the tour non-interactively: bring each scene up, print each proof with its timing, stop at the first ' +
        'failure (exit 1), then tear everything down',
      schema: schemas.bool(),
      default: false,
    },
    only: {
      flag: '--only <scenes>',
      env: 'KNET_LAB_ONLY',
      description:
        'comma-separated scenes to bring up (and what they need), e.g. tower,pod-gateway; empty: all',
      schema: sceneList,
      default: '',
    },
    withNode: {
      flag: '--with-node [bool]',
      env: 'KNET_LAB_WITH_NODE',
      description:
        'run the tower and pod-gateway scenes on a real node (NodeBed: kubelet, containerd, runc, kube-proxy and ' +
        'its own control plane, in a network namespace the lab creates) from their helm charts and the images ' +
        '`npm run images` builds (built when missing: a few minutes the first time), kubeconfig ' +
        '.lab/node.kubeconfig; --with-node=false runs them instead as processes against the two control planes',
      schema: schemas.bool(),
      default: true,
    },
    keep: {
      flag: '--keep',
      env: 'KNET_LAB_KEEP',
      description:
        'with --check, or after a failure: do not tear down; keep everything running for exploration until ' +
        'Ctrl-C (SIGINT) or SIGTERM',
      schema: schemas.bool(),
      default: false,
    },
    json: {
      flag: '--json',
      env: 'KNET_LAB_JSON',
      description: 'print one JSON object per event on stdout (progress, scene, proof, teardown, summary)',
      schema: schemas.bool(),
      default: false,
    },
    dir: {
      flag: '--dir <path>',
      env: 'KNET_LAB_DIR',
      description:
        'the lab folder (relative to the workspace root): kubeconfigs, env file and the lock that keeps a second ' +
        'lab out; removed at teardown',
      schema: z.string().min(1, 'must not be empty'),
      default: '.lab',
    },
    refresh: {
      flag: '--refresh <duration>',
      env: 'KNET_LAB_REFRESH',
      description: 'how often the live table re-runs the live proofs',
      schema: schemas.duration({ min: 1000, max: 600_000 }),
      default: '5s',
    },
    list: {
      flag: '--list',
      description: 'print the scenes (name, what it needs, what it shows) and exit',
      schema: schemas.bool(),
      default: false,
    },
  },
});
