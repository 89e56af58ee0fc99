export * from './hostkey';
export * from './pipe';
export * from './protocol';
export * from './ws';
export * from './status';
