module.exports = { ...require('../../jest.preset.js'), displayName: 'machine-store' };
