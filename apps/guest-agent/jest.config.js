module.exports = { ...require('../../jest.preset.js'), displayName: 'guest-agent' };
