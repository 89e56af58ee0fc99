export * from './crds';
export * from './tags';
export * from './types';
export * from './templates';
