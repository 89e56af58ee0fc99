export {
  NETLAB_PREFIX,
  namespaceOwner,
  parseNetnsList,
  sweepStaleNetns,
  destroyNamespace,
  type SweepOptions,
} from './namespaces';
export * from './lab';
export * from './bridge';
export * from './overlay';
export * from './root-state';
