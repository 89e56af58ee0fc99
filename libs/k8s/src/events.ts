import { CoreV1Api, type CoreV1Event, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '@knet/runtime';
import { decodeApiError, isNotFound } from './errors';
import { patchObject } from './patch';

export type EventType = 'Normal' | 'Warning';

/**
 * Records core/v1 Events about objects, as `kubectl describe` shows them. Repeats of the same
 * (object, type, reason, message) within `aggregateWindowMs` bump `count` and `lastTimestamp` of the
 * existing Event instead of creating a new one. Recording never throws: a failure is logged.
 */
export class EventRecorder {
  private readonly api: CoreV1Api;
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();

  constructor(
    private readonly kc: KubeConfig,
    private readonly component: string,
    private readonly opts: { host?: string; logger?: Logger; aggregateWindowMs?: number } = {},
  ) {
    this.api = kc.makeApiClient(CoreV1Api);
  }

  async event(obj: KubernetesObject, type: EventType, reason: string, message: string): Promise<void> {
    const md = obj.metadata ?? {};
    const namespace = md.namespace || 'default'; // cluster-scoped objects' events go to "default", as kubectl does
    const key = [obj.kind, namespace, md.name, md.uid, type, reason, message].join('\u0000');
    const now = new Date();
    const prev = this.recent.get(key);
    const window = this.opts.aggregateWindowMs ?? 10 * 60_000;
    try {
      if (prev && now.getTime() - prev.at < window) {
        prev.count++;
        prev.at = now.getTime();
        await patchObject(
          this.kc,
          { apiVersion: 'v1', kind: 'Event', name: prev.name, namespace: prev.namespace },
          { count: prev.count, lastTimestamp: now.toISOString() },
          'merge',
        );
        return;
      }
      const name = `${md.name ?? 'object'}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`;
      const body: CoreV1Event = {
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: md.name,
          namespace: md.namespace,
          uid: md.uid,
          resourceVersion: md.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: this.component, ...(this.opts.host ? { host: this.opts.host } : {}) },
        reportingComponent: this.component,
        reportingInstance: this.opts.host ?? this.component,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      };
      await this.api.createNamespacedEvent({ namespace, body });
      this.recent.set(key, { name, namespace, count: 1, at: now.getTime() });
      if (this.recent.size > 1000) this.recent.delete(this.recent.keys().next().value as string);
    } catch (e) {
      if (prev && isNotFound(e)) this.recent.delete(key); // the Event expired; the next call creates one
      this.opts.logger?.warn({ reason, err: decodeApiError(e).message }, 'could not record event');
    }
  }

  normal(obj: KubernetesObject, reason: string, message: string): Promise<void> {
    return this.event(obj, 'Normal', reason, message);
  }

  warning(obj: KubernetesObject, reason: string, message: string): Promise<void> {
    return this.event(obj, 'Warning', reason, message);
  }
}
