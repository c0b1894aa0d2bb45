// Tests of the repository's own tooling (tools/tests/*.test.ts).
module.exports = { ...require('../jest.preset.js'), displayName: 'tools', roots: ['<rootDir>/tests'] };
