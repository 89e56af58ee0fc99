/**
 * The PacketCluster loop: owner Cluster → paused → finalizer → delete or normal. Normal: find the
 * cluster's elastic IP by its tag (CAPEM's), else reserve one, then set `spec.controlPlaneEndpoint`
 * and ready. The endpoint is written right after the reservation; a crash in between is repaired
 * by the tag lookup, never by a second reservation. Once ready it makes no Metal API call.
 */
import {
  PACKET_CLUSTER_FINALIZER,
  eipTag,
  type CapiCluster,
  type CapiCondition,
  type PacketCluster,
} from '@knet/capi';
import { setCondition } from '@knet/k8s';
import { isMetalError, type IPReservation } from '@knet/metal';
import type { ReconcileResult } from './machine-reconciler';
import type { MetalPort } from './metal-port';
import { READY, NETWORK_READY, REASON, planCluster, type ClusterInput, type ConditionUpdate } from './plan';
import { metalTrouble, type ProblemLog } from './problems';
import type { ProviderStore } from './store';

export interface ClusterReconcilerDeps {
  store: ProviderStore;
  metal: MetalPort;
  problems: ProblemLog;
  now?: () => Date;
}

export class ClusterReconciler {
  constructor(private readonly d: ClusterReconcilerDeps) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    let pcl = await this.d.store.getPacketCluster(namespace, name);
    if (!pcl) return {};
    const cluster = await this.ownerCluster(pcl);
    const input: ClusterInput = { packetCluster: pcl, cluster };
    const now = this.d.now?.() ?? new Date();
    let conditions = [...(pcl.status?.conditions ?? [])];
    const fields: Record<string, unknown> = {};
    const set = (c: ConditionUpdate) => {
      conditions = setCondition<CapiCondition>(conditions, { ...c, severity: c.severity ?? '' }, now, {
        lastUpdateTime: false,
      });
    };
    const key = `${namespace}/${name}`;
    let troubled = false;
    try {
      for (let n = 0; n < 12; n++) {
        input.packetCluster = pcl;
        const step = planCluster(input);
        switch (step.do) {
          case 'wait':
            for (const c of step.conditions ?? []) set(c);
            return {};
          case 'done':
            return {};
          case 'add-finalizer':
            pcl = await this.d.store.addFinalizer(pcl, PACKET_CLUSTER_FINALIZER);
            continue;
          case 'look-up-elastic-ip':
            input.reservation = await this.findReservation(pcl, cluster?.metadata.name ?? clusterNameOf(pcl));
            continue;
          case 'reserve-elastic-ip':
            try {
              input.reservation = await this.d.metal.requestIpReservation(pcl.spec.projectID, {
                type: 'public_ipv4',
                quantity: 1,
                ...(step.metro ? { metro: step.metro } : { facility: step.facility }),
                tags: step.tags,
                fail_on_approval_required: true,
              });
            } catch (e) {
              if (!isMetalError(e, 'invalid')) throw e;
              const message = `the Metal API refused the elastic IP (quota?): ${e.message}`;
              set({
                type: NETWORK_READY,
                status: 'False',
                reason: REASON.eipReserveRejected,
                message,
                severity: 'Error',
              });
              set({
                type: READY,
                status: 'False',
                reason: REASON.eipReserveRejected,
                message,
                severity: 'Error',
              });
              await this.d.store.event(pcl, 'Warning', REASON.eipReserveRejected, message);
              return { requeueAfterMs: 300_000 };
            }
            await this.d.store.event(
              pcl,
              'Normal',
              'ElasticIPReserved',
              `reserved ${input.reservation.address}`,
            );
            continue;
          case 'set-endpoint':
            pcl = await this.d.store.patch(pcl, {
              spec: { controlPlaneEndpoint: { host: step.host, port: step.port } },
            });
            fields['eipReservationID'] = step.reservationId;
            continue;
          case 'write-ready':
            for (const c of step.conditions) set(c);
            Object.assign(fields, { ready: true, initialization: { provisioned: true } });
            if (step.event) await this.d.store.event(pcl, 'Normal', step.event.reason, step.event.message);
            // Written now, so the next plan sees it (and the pass ends).
            pcl = await this.d.store.patchStatus(pcl, { ...fields, conditions });
            continue;
          case 'release-elastic-ip':
            try {
              await this.d.metal.deleteIpReservation(step.reservationId);
            } catch (e) {
              if (!isMetalError(e, 'gone')) throw e;
            }
            await this.d.store.event(
              pcl,
              'Normal',
              'ElasticIPReleased',
              `released reservation ${step.reservationId}`,
            );
            input.reservation = null;
            pcl = { ...pcl, status: { ...pcl.status, eipReservationID: undefined } };
            continue;
          case 'remove-finalizer':
            await this.d.store.removeFinalizer(pcl, PACKET_CLUSTER_FINALIZER);
            this.d.problems.clear(key);
            return {};
        }
      }
      throw new Error(`PacketCluster ${key}: no result after 12 steps`);
    } catch (e) {
      const trouble = metalTrouble(e);
      if (!trouble) throw e;
      troubled = true;
      set({
        type: READY,
        status: 'False',
        reason: trouble.reason,
        message: trouble.message,
        severity: 'Warning',
      });
      this.d.problems.report(key, trouble.reason, trouble.message);
      return { requeueAfterMs: trouble.retryAfterMs, ...(trouble.holdOff ? { holdOff: true } : {}) };
    } finally {
      if (!troubled) this.d.problems.clear(key);
      const changed =
        JSON.stringify(conditions) !== JSON.stringify(pcl?.status?.conditions ?? []) ||
        Object.entries(fields).some(
          ([k, v]) =>
            JSON.stringify((pcl?.status as Record<string, unknown> | undefined)?.[k]) !== JSON.stringify(v),
        );
      if (changed) {
        const cur = await this.d.store.getPacketCluster(namespace, name);
        if (cur) await this.d.store.patchStatus(cur, { ...fields, conditions });
      }
    }
  }

  private async ownerCluster(pcl: PacketCluster): Promise<CapiCluster | undefined> {
    const ref = pcl.metadata.ownerReferences?.find(
      (o) => o.kind === 'Cluster' && o.apiVersion.startsWith('cluster.x-k8s.io/'),
    );
    if (!ref) return undefined;
    return this.d.store.getCluster(pcl.metadata.namespace ?? 'default', ref.name);
  }

  /** The reservation tagged for the cluster (every page of the project's public IPv4 reservations). */
  private async findReservation(pcl: PacketCluster, cluster: string): Promise<IPReservation | null> {
    const all = await this.d.metal.listIpReservations(pcl.spec.projectID, {
      types: ['public_ipv4'],
      per_page: 250,
    });
    const tag = eipTag(cluster);
    return all.find((r) => r.tags?.includes(tag) && r.address) ?? null;
  }
}

const clusterNameOf = (pcl: PacketCluster) =>
  pcl.metadata.labels?.['cluster.x-k8s.io/cluster-name'] ?? pcl.metadata.name;
