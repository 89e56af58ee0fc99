import { allScenes, clearScenes, registerScene, selectScenes, type Scene } from './scene';

const scene = (name: string, needs: string[] = []): Scene => ({
  name,
  title: name,
  needs,
  bundles: [],
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

  it.each([
    [[scene('a'), scene('a')], 'scene a is registered twice'],
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
