/**
 * What a scene of the lab is, and the registry scenes add themselves to.
 *
 * A scene brings up one part of the system with the real parts (control planes from the test bed,
 * network namespaces, the apps' own bundles) and returns its rows: one per component or proof,
 * each with a check the lab runs (once in `--check`, again at every refresh in the live table when
 * `live`) and the exact command a user types to poke at it by hand. Everything a scene starts is
 * handed to `ctx.defer`, so the lab tears it down in reverse order on Ctrl-C, on a failure and at
 * the end of `--check`.
 *
 * A scene module calls `registerScene` at load time; `scenes/index.ts` imports every scene module
 * (later apps add theirs there).
 *
 * A scene registered with `onNode: true` runs only with `--with-node`, on the real node (the `node`
 * scene's NodeBed), in place of the scene of the same name: `tower` and `pod-gateway` have both.
 */
import type { ControlPlane, NodeBed } from '@knet/testing';

export interface LabClusters {
  /** The host cluster (tower-proxy's side): etcd + kube-apiserver + kube-controller-manager. */
  host: ControlPlane;
  /** The member cluster (tower-agent's side, and where the pod-gateway scene's pods are created). */
  member: ControlPlane;
}

export interface LabContext {
  /** The lab folder (absolute): kubeconfigs and state a user may look at; removed at teardown. */
  readonly dir: string;
  /** `dir` as the user typed or sees it from the workspace root (`.lab`), for commands in rows. */
  readonly shownDir: string;
  /** The real kubectl (the test bed's) — commands in rows name it as `kubectl`. */
  readonly kubectl: string;
  /**
   * The machine's temp folder. The lab's own (TMPDIR) is a folder of this run; what another run
   * must find to sweep it after a crash (a node's folder, its mounts) goes here instead.
   */
  readonly machineTmpDir: string;
  /**
   * One line of progress ("starting tower-proxy"), shown while the scene comes up. Once the lab is
   * interrupted (Ctrl-C) it throws instead, ending up() there: call it between steps.
   */
  progress(line: string): void;
  /**
   * Registers a teardown step (`what` names it in errors). Steps run in reverse order of
   * registration; each runs once, also when an earlier one failed. Register a step as soon as the
   * thing exists, before the next await that could fail.
   */
  defer(what: string, step: () => Promise<unknown> | unknown): void;
  /** The clusters scene's control planes; throws one clear line when that scene did not run. */
  clusters(): LabClusters;
  /** Set by the clusters scene. */
  setClusters(c: LabClusters): void;
  /** The node scene's NodeBed (`--with-node`); throws one clear line when that scene did not run. */
  node(): NodeBed;
  /** Set by the node scene. */
  setNode(bed: NodeBed): void;
  /**
   * Adds a check of what is left on the machine after the teardown (`what` names it): the lab runs
   * it with its own (namespaces, processes, temp dirs) and reports each line it returns as left.
   */
  checkLeftovers(what: string, left: () => string[] | Promise<string[]>): void;
}

export interface Row {
  /** Scene-local component or proof name: `tower-proxy`, `kubectl via tower`, `kill switch`. */
  component: string;
  /** One phrase: what the check proves ("the member's namespaces, listed through the tunnel"). */
  proof: string;
  /** What a user types to look for themselves; relative paths from the workspace root. */
  command: string;
  /**
   * Runs the check: resolves to a short one-line result ("5 namespaces: default, kube-public, …",
   * "seen from 203.0.113.2"), throws an Error with one clear line when it fails.
   */
  check(): Promise<string>;
  /**
   * Re-run at every refresh of the live table (default true). False for checks that disturb the
   * system (taking the VPN link down) or take long: the table keeps their first result.
   */
  live?: boolean;
}

export interface Scene {
  /** `clusters`, `tower`, `pod-gateway` — what `--only` takes. */
  name: string;
  /** One line for `--help` and the table's section heading. */
  title: string;
  /** Scenes that must be up first (`--only tower` brings up `clusters` too). */
  needs: readonly string[];
  /** The app bundles it runs (`appBundle(name)`), built before any scene starts. */
  bundles: readonly string[];
  /**
   * Runs only with `--with-node`, on the real node, in place of the scene of the same name (if
   * any). Default false: the scene runs without `--with-node` (and with it, unless replaced).
   */
  onNode?: boolean;
  /** Brings the scene up; resolves to its rows, in the order their checks should run. */
  up(ctx: LabContext): Promise<Row[]>;
}

/** Every scene by `name` (process scenes) or `name@node` (`onNode`), in registration order. */
const registry = new Map<string, Scene>();

const key = (s: Scene): string => (s.onNode ? `${s.name}@node` : s.name);

/**
 * Adds a scene (at module load). Names are unique per kind (one scene and one `onNode` scene may
 * share a name); its `needs` must already be registered.
 */
export function registerScene(scene: Scene): void {
  if (!/^[a-z][a-z0-9-]*$/.test(scene.name))
    throw new Error(`scene name ${JSON.stringify(scene.name)} is invalid`);
  if (registry.has(key(scene)))
    throw new Error(`scene ${scene.name}${scene.onNode ? ' (on the node)' : ''} is registered twice`);
  for (const n of scene.needs) {
    if (!registry.has(n) && !registry.has(`${n}@node`))
      throw new Error(`scene ${scene.name} needs ${n}, which is not registered before it`);
  }
  registry.set(key(scene), scene);
}

/**
 * The scenes of a run, in registration order (which is a valid start order): without `withNode`
 * every scene but the `onNode` ones; with it, the `onNode` ones in place of their namesakes.
 */
export function allScenes(opts: { withNode?: boolean } = {}): Scene[] {
  const scenes = [...registry.values()];
  if (!opts.withNode) return scenes.filter((s) => !s.onNode);
  return scenes.filter((s) => s.onNode || !registry.has(`${s.name}@node`));
}

/** Test hook: forget every scene. */
export function clearScenes(): void {
  registry.clear();
}

/**
 * The scenes to bring up for `--only a,b` (all when `only` is empty): the named ones and what they
 * need, in registration order. Throws one line naming the unknown scene and the known ones.
 */
export function selectScenes(only: readonly string[], scenes: readonly Scene[]): Scene[] {
  const byName = new Map(scenes.map((s) => [s.name, s]));
  if (only.length === 0) return [...scenes];
  const wanted = new Set<string>();
  const add = (name: string) => {
    const s = byName.get(name);
    if (!s) {
      throw new Error(
        `--only: no scene ${JSON.stringify(name)}; scenes are ${scenes.map((x) => x.name).join(', ')}`,
      );
    }
    if (wanted.has(name)) return;
    wanted.add(name);
    s.needs.forEach(add);
  };
  only.forEach(add);
  return scenes.filter((s) => wanted.has(s.name));
}
