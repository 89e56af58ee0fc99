export * from './types';
export * from './ip';
