import { matchNatEntry, parseNatConf } from './index';

const limits = { firstDynamicIp: 20 };

describe('nat.conf', () => {
  it('reads pod-gateway lines and our public:client remapping', () => {
    const entries = parseNatConf(
      [
        '# static clients',
        'transmission 10 tcp:51413,udp:51413',
        '',
        'web 11 tcp:8080:80  # remapped',
        'plain 12',
      ].join('\n'),
      'nat.conf',
      limits,
    );
    expect(entries).toEqual([
      {
        hostname: 'transmission',
        octet: 10,
        ports: [
          { protocol: 'tcp', publicPort: 51413, clientPort: 51413 },
          { protocol: 'udp', publicPort: 51413, clientPort: 51413 },
        ],
        origin: 'nat.conf:2',
      },
      {
        hostname: 'web',
        octet: 11,
        ports: [{ protocol: 'tcp', publicPort: 8080, clientPort: 80 }],
        origin: 'nat.conf:4',
      },
      { hostname: 'plain', octet: 12, ports: [], origin: 'nat.conf:5' },
    ]);
  });

  it.each([
    ['web', 'nat.conf:1: expected "hostname octet [proto:port,…]"'],
    ['Web_1 10', 'nat.conf:1: "Web_1" is not a pod hostname'],
    ['web 20', 'nat.conf:1: static address "20" must be the last octet, from 2 to 19'],
    ['web 1', 'from 2 to 19'],
    ['web 10 http:80', 'nat.conf:1: "http:80" is not a port forward like tcp:8080'],
    ['web 10 tcp:70000', 'is not a port forward'],
    ['web 10\nweb 11', 'nat.conf:2: hostname web is already listed at nat.conf:1'],
    ['web 10\napi 10', 'nat.conf:2: address .10 is already given to web (nat.conf:1)'],
    ['web 10 tcp:80\napi 11 tcp:80:8080', 'nat.conf:2: tcp:80 is already forwarded to web (nat.conf:1)'],
  ])('refuses %p', (text, message) => {
    expect(() => parseNatConf(text, 'nat.conf', limits)).toThrow(message);
  });

  const entries = parseNatConf('web 10\nweb-api 11\nmy-app 12\nsts 13', 'nat.conf', limits);
  it.each([
    ['web', 'web'],
    ['web-7d9f8c6b5-x2x9z', 'web'], // Deployment pod
    ['web-api', 'web-api'],
    ['web-api-7d9f8c6b5-x2x9z', 'web-api'], // longest match wins (pod-gateway: prefix clash)
    ['my-app-0', 'my-app'], // StatefulSet (pod-gateway cut at the first dash: "my")
    ['sts-12', 'sts'],
    ['my-app-abcde', 'my-app'], // DaemonSet / Job
    ['web2', undefined], // no prefix matching
    ['my', undefined],
  ])('hostname %p matches %p', (hostname, want) => {
    const warnings: string[] = [];
    expect(matchNatEntry(entries, hostname, (w) => warnings.push(w))?.hostname).toBe(want);
    // Only an exact match is quiet: a controller's pods may be several replicas.
    expect(warnings).toHaveLength(want === undefined || want === hostname ? 0 : 1);
  });

  it('warns that the replicas of a controller would share a static address', () => {
    const warnings: string[] = [];
    matchNatEntry(entries, 'sts-1', (w) => warnings.push(w));
    expect(warnings).toEqual([
      'nat.conf entry "sts" (nat.conf:4) matches pod sts-1 as one of its controller\'s pods: every replica gets .13, ' +
        'so with more than one they share the address and its port forwards (keep one replica, or list each pod by name, e.g. "sts-0" for a StatefulSet)',
    ]);
  });

  it("still matches what pod-gateway's first-dash cut matched, and says loudly why that is a bad idea", () => {
    const media = parseNatConf('media 10 tcp:8080', 'nat.conf', limits);
    const warnings: string[] = [];
    expect(matchNatEntry(media, 'media-qbittorrent-6d4cf56db6-x2x9z', (w) => warnings.push(w))).toBe(
      media[0],
    );
    expect(warnings).toEqual([
      'nat.conf entry "media" (nat.conf:1) matches pod media-qbittorrent-6d4cf56db6-x2x9z only by ' +
        'pod-gateway\'s first-dash rule, so every pod named "media-…" gets .10 and its port forwards: ' +
        'name the entry after the workload (e.g. "media-qbittorrent") to give them to this one alone',
    ]);
    expect(matchNatEntry(entries, 'web-other-name')?.hostname).toBe('web');
    expect(matchNatEntry(entries, 'sts-other-0')?.hostname).toBe('sts');
  });
});
