import type { KubeConfig } from '@kubernetes/client-node';
import { kubeRequest } from './request';

export interface ResourceRef {
  apiVersion: string;
  kind: string;
  name?: string;
  namespace?: string;
  /** e.g. 'status' or 'scale'. */
  subresource?: string;
}

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

const cache = new WeakMap<KubeConfig, Map<string, Promise<ApiResource[]>>>();

/**
 * The REST path of a resource, resolving kind → plural with the API server's discovery
 * (cached per kubeconfig and apiVersion): `/apis/group/v1/namespaces/ns/plural/name/status`.
 */
export async function resourcePath(kc: KubeConfig, ref: ResourceRef): Promise<string> {
  const r = await findResource(kc, ref.apiVersion, ref.kind);
  const base = ref.apiVersion.includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
  if (r.namespaced && !ref.namespace && ref.name) {
    throw new Error(`${ref.kind} ${ref.name}: ${ref.kind} is namespaced; give its namespace`);
  }
  let path = base;
  if (r.namespaced && ref.namespace) path += `/namespaces/${encodeURIComponent(ref.namespace)}`;
  path += `/${r.name}`;
  if (ref.name) path += `/${encodeURIComponent(ref.name)}`;
  if (ref.subresource) path += `/${ref.subresource}`;
  return path;
}

async function findResource(kc: KubeConfig, apiVersion: string, kind: string): Promise<ApiResource> {
  let perKc = cache.get(kc);
  if (!perKc) cache.set(kc, (perKc = new Map()));
  let list = perKc.get(apiVersion);
  if (!list) {
    const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    list = kubeRequest<{ resources: ApiResource[] }>(kc, { method: 'GET', path }).then((l) => l.resources);
    perKc.set(apiVersion, list);
    list.catch(() => perKc.delete(apiVersion));
  }
  const found = (await list).find((r) => r.kind === kind && !r.name.includes('/'));
  if (!found) {
    perKc.delete(apiVersion); // a CRD may have been installed since
    throw new Error(`the API server has no kind ${kind} in ${apiVersion} (is its CRD installed?)`);
  }
  return found;
}
