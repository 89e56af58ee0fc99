import type { AgentSession } from './sessions';
import { SessionRegistry } from './sessions';

/** A session whose close is reported later, as a real one's (its connection closes asynchronously). */
function session(cluster: string, closes: AgentSession[]): AgentSession {
  const s: AgentSession = {
    id: `${cluster}-${closes.length}`,
    cluster,
    agent: 'pod-1',
    remoteAddress: '127.0.0.1',
    connectedAt: new Date(0),
    binding: 'uid/digest',
    targets: new Set(['kubernetes']),
    openChannels: 0,
    openChannel: () => Promise.reject(new Error('not in this test')),
    close: () => closes.push(s),
  };
  return s;
}

describe('SessionRegistry: forgetting a cluster', () => {
  it('forgets a cluster closed by closeCluster when its last session has closed, not before', () => {
    const r = new SessionRegistry();
    const forgotten: string[] = [];
    r.on('forget', (c) => forgotten.push(c));
    const closing: AgentSession[] = [];
    const [a, b] = [session('alpha', closing), session('alpha', closing)];
    r.add(a);
    r.add(b);
    r.closeCluster('alpha', 'deleted');
    expect(closing).toEqual([a, b]);
    r.remove(a);
    expect(forgotten).toEqual([]);
    r.remove(b);
    expect(forgotten).toEqual(['alpha']);
    r.remove(b); // a second report of the same close
    expect(forgotten).toEqual(['alpha']);
  });

  it('forgets a cluster without sessions at once, and never one that only lost its agents', () => {
    const r = new SessionRegistry();
    const forgotten: string[] = [];
    r.on('forget', (c) => forgotten.push(c));
    const s = session('alpha', []);
    r.add(s);
    r.remove(s); // the agent left; the Cluster is still served
    expect(forgotten).toEqual([]);
    r.closeCluster('alpha', 'deleted');
    expect(forgotten).toEqual(['alpha']);
  });

  it('keeps a cluster that gained a session while the closed ones were closing (re-created meanwhile)', () => {
    const r = new SessionRegistry();
    const forgotten: string[] = [];
    r.on('forget', (c) => forgotten.push(c));
    const old = session('alpha', []);
    r.add(old);
    r.closeCluster('alpha', 'deleted');
    const fresh = session('alpha', []);
    r.add(fresh);
    r.remove(old);
    expect(forgotten).toEqual([]);
    r.remove(fresh); // later: its agent leaves, the Cluster stays
    expect(forgotten).toEqual([]);
  });
});
