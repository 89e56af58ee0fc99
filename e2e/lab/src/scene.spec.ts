import { allScenes, clearScenes, registerScene, selectScenes, type Scene } from './scene';

const scene = (name: string, needs: string[] = [], onNode = false): Scene => ({
  name,
  title: name,
  needs,
  bundles: [],
  onNode,
  up: () => Promise.resolve([]),
});

describe('scene registry', () => {
  afterEach(() => clearScenes());

  it('keeps registration order, which is a start order', () => {
    registerScene(scene('clusters'));
    registerScene(scene('tower', ['clusters']));
    registerScene(scene('pod-gateway', ['clusters']));
    expect(allScenes().map((s) => s.name)).toEqual(['clusters', 'tower', 'pod-gateway']);
  });

  it('--with-node: the onNode scenes in place of their namesakes, in registration order', () => {
    registerScene(scene('clusters'));
    registerScene(scene('node', [], true));
    registerScene(scene('tower', ['clusters']));
    registerScene(scene('tower', ['node'], true));
    registerScene(scene('pod-gateway', ['clusters']));
    registerScene(scene('connector', ['clusters']));
    const names = (withNode: boolean) =>
      allScenes({ withNode }).map((s) => `${s.name}${s.onNode ? '@node' : ''}`);
    expect(names(false)).toEqual(['clusters', 'tower', 'pod-gateway', 'connector']);
    expect(names(true)).toEqual(['clusters', 'node@node', 'tower@node', 'pod-gateway', 'connector']);
    // --only tower brings up the node, not the clusters.
    expect(selectScenes(['tower'], allScenes({ withNode: true })).map((s) => s.name)).toEqual([
      'node',
      'tower',
    ]);
  });

  it.each([
    [[scene('a'), scene('a')], 'scene a is registered twice'],
    [[scene('a', [], true), scene('a', [], true)], 'scene a (on the node) is registered twice'],
    [[scene('b', ['a'])], 'scene b needs a, which is not registered before it'],
    [[scene('Bad name')], 'scene name "Bad name" is invalid'],
  ])('refuses %#: %s', (scenes, message) => {
    expect(() => scenes.forEach(registerScene)).toThrow(message);
  });
});

describe('selectScenes (--only)', () => {
  const scenes = [
    scene('clusters'),
    scene('tower', ['clusters']),
    scene('pod-gateway', ['clusters']),
    scene('x', ['tower']),
  ];

  it.each([
    [[], ['clusters', 'tower', 'pod-gateway', 'x']],
    [['tower'], ['clusters', 'tower']],
    [
      ['pod-gateway', 'tower'],
      ['clusters', 'tower', 'pod-gateway'],
    ],
    [['x'], ['clusters', 'tower', 'x']],
    [['clusters', 'clusters'], ['clusters']],
  ])('--only %j brings up %j, in start order', (only, names) => {
    expect(selectScenes(only, scenes).map((s) => s.name)).toEqual(names);
  });

  it('names an unknown scene and the known ones', () => {
    expect(() => selectScenes(['towr'], scenes)).toThrow(
      '--only: no scene "towr"; scenes are clusters, tower, pod-gateway, x',
    );
  });
});
