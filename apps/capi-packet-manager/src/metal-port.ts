/**
 * The Metal API calls the reconcilers make: a subset of @knet/metal's `MetalClient`, so the loops'
 * tests can count and fail calls at this seam while production passes the client itself.
 */
import type { MetalClient } from '@knet/metal';

export type MetalPort = Pick<
  MetalClient,
  | 'createDevice'
  | 'getDevice'
  | 'deleteDevice'
  | 'listProjectDevices'
  | 'requestIpReservation'
  | 'listIpReservations'
  | 'deleteIpReservation'
  | 'assignIpAddress'
>;
