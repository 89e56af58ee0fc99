export * from './bootstrap';
export * from './crds';
export * from './tags';
export * from './templates';
export * from './types';
