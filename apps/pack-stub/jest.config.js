module.exports = { ...require('../../jest.preset.js'), displayName: 'pack-stub' };
