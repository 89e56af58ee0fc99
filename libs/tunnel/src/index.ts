export * from './hostkey';
export * from './pipe';
export * from './protocol';
