// Shared Jest settings for every project. Projects extend it in their jest.config.cjs.
// Dependencies that ship ESM only (client-node 1.x and its auth libs, execa 9 and its helpers)
// are transformed to CommonJS by SWC like our own sources; everything else in node_modules is not.
const esmOnly = [
  '@kubernetes/client-node',
  'openid-client',
  'oauth4webapi',
  'jose',
  'execa',
  'npm-run-path',
  'path-key',
  'strip-final-newline',
  'unicorn-magic',
  'figures',
  'is-plain-obj',
  'yoctocolors',
  'parse-ms',
  'pretty-ms',
  'human-signals',
  'get-stream',
  '@sec-ant/readable-stream',
  'is-stream',
  'is-unicode-supported',
  'cross-spawn',
  '@sindresorhus/merge-streams',
];

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.(t|j|mj)s$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs' },
        sourceMaps: 'inline',
      },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  moduleNameMapper: {
    '^@knet/(k8s|host-net|crypto|runtime|testing|tunnel|cluster-crd|podgw|dhcp|dns|twingate|kilo|metal|capi)$':
      '<rootDir>/../../libs/$1/src/index.ts',
    // unicorn-magic (used by execa) exports only an `import` condition, which Jest's CommonJS
    // resolver does not match; point at its Node entry, which the SWC transform above converts.
    '^unicorn-magic$': '<rootDir>/../../node_modules/unicorn-magic/node.js',
  },
  testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/**/*.test.ts'],
  reporters: ['default', '<rootDir>/../../tools/jest/totals-reporter.cjs'],
};
