export * from './bench';
export * from './bundle';
export * from './controlplane';
export * from './exec';
export * from './workspace';
export * from './netns';
export * from './image';
export * from './podgw-lab';
