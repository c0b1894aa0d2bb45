module.exports = { ...require('../../jest.preset.js'), displayName: 'containerd-shim' };
