import { clip, formatAge, formatMs, formatProofLines, renderTable, type SceneView } from './display';

describe('formatMs / formatAge / clip', () => {
  it.each([
    [12.4, '12 ms'],
    [999, '999 ms'],
    [1000, '1.0 s'],
    [59_940, '59.9 s'],
    [60_000, '1m00s'],
    [133_000, '2m13s'],
    [3_725_000, '1h02m'],
  ])('formatMs(%d) = %s', (ms, text) => expect(formatMs(ms)).toBe(text));

  it.each([
    [200, 'just now'],
    [12_900, '12 s ago'],
    [185_000, '3m05s ago'],
  ])('formatAge(%d) = %s', (ms, text) => expect(formatAge(ms)).toBe(text));

  it('cuts to the width with an ellipsis, on one line', () => {
    expect(clip('abcdef', 6)).toBe('abcdef');
    expect(clip('abcdefg', 6)).toBe('abcde…');
    expect(clip('a\n  b', 10)).toBe('a b');
    expect(clip('abc', 0)).toBe('');
  });
});

const scenes: SceneView[] = [
  {
    name: 'clusters',
    title: 'a host and a member control plane',
    state: 'up',
    upMs: 17_800,
    rows: [
      {
        component: 'host cluster',
        proof: 'ready',
        command: 'kubectl --kubeconfig .lab/host.kubeconfig get ns',
        live: true,
        state: 'ok',
        result: 'ready; 4 namespaces',
        ms: 120,
        at: 95_000,
      },
    ],
  },
  {
    name: 'pod-gateway',
    title: 'a gateway pod and its clients',
    state: 'up',
    upMs: 30_000,
    rows: [
      {
        component: 'kill switch',
        proof: 'nothing leaks with the VPN down',
        command: 'ip netns exec knt-abc-1234 iptables -L -v',
        live: false,
        state: 'failed',
        result:
          '3 packets leaked to 203.0.113.100 with the VPN link down, a very long explanation that goes on',
        ms: 4100,
        at: 60_000,
      },
      {
        component: 'web',
        proof: 'routed',
        command: 'ip netns exec knt-x ping 203.0.113.100',
        live: true,
        state: 'checking',
      },
    ],
  },
  { name: 'tower', title: 'the tunnel', state: 'failed', error: 'tower-proxy exited', rows: [] },
];

describe('renderTable (golden)', () => {
  it('draws the header, each scene and two lines per row, cut to the width', () => {
    const lines = renderTable({
      scenes,
      startedAt: 0,
      now: 100_000,
      refreshMs: 5000,
      envFile: '.lab/env',
      columns: 100,
      color: false,
    });
    expect(lines).toEqual([
      'knet lab · up 1m40s · 1 ok, 1 failing · live proofs re-run every 5 s · Ctrl-C tears it all down',
      "kubectl and helm here are the test bed's: source .lab/env to have them on your PATH",
      '',
      '── clusters: a host and a member control plane · up in 17.8 s',
      ' ✓ host cluster  ready; 4 namespaces · 120 ms · 5 s ago',
      '                 $ kubectl --kubeconfig .lab/host.kubeconfig get ns',
      '',
      '── pod-gateway: a gateway pod and its clients · up in 30.0 s',
      ' ✗ kill switch   3 packets leaked to 203.0.113.100 with the VPN link down… · once · 4.1 s · 40 s ago',
      '                 $ ip netns exec knt-abc-1234 iptables -L -v',
      ' … web           checking…',
      '                 $ ip netns exec knt-x ping 203.0.113.100',
      '',
      '── tower: the tunnel · failed: tower-proxy exited',
      '',
    ]);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(100);
  });

  it('paints marks and failures only with color', () => {
    const lines = renderTable({
      scenes,
      startedAt: 0,
      now: 1,
      refreshMs: 5000,
      envFile: 'e',
      columns: 100,
      color: true,
    });
    expect(lines.join('\n')).toContain('\x1b[32m✓\x1b[0m');
    expect(lines.join('\n')).toContain('\x1b[31m✗\x1b[0m');
  });
});

describe('formatProofLines (--check)', () => {
  it('the mark, scene, component, result and timing; then what it proves and the command', () => {
    expect(formatProofLines('clusters', scenes[0]!.rows[0]!, false)).toEqual([
      '  ✓ clusters · host cluster: ready; 4 namespaces (120 ms)',
      '      proves: ready',
      '      try:    kubectl --kubeconfig .lab/host.kubeconfig get ns',
    ]);
  });
});
