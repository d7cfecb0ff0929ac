import twilio from 'twilio';
const N = 20000;
let t = performance.now();
for (let i = 0; i < N; i++) {
  const r = new twilio.twiml.VoiceResponse();
  const d = r.dial({ callerId: '+14155550151' });
  d.number('+14155550187');
  r.toString();
}
console.log('twiml build', ((performance.now() - t) / N * 1000).toFixed(1), 'µs');
const params = { From: '+14155550101', To: '+14155550150', CallSid: 'CA' + 'a'.repeat(32), Direction: 'inbound', AccountSid: 'AC' + 'b'.repeat(32), CallStatus: 'ringing' };
const url = 'http://127.0.0.1:3000/webhooks/twilio/voice';
const sig = twilio.getExpectedTwilioSignature('tok', url, params);
t = performance.now();
for (let i = 0; i < N; i++) twilio.validateRequest('tok', sig, url, params);
console.log('validate (port url)', ((performance.now() - t) / N * 1000).toFixed(1), 'µs');
const url2 = 'https://veil.example.com/webhooks/twilio/voice';
const sig2 = twilio.getExpectedTwilioSignature('tok', url2, params);
t = performance.now();
for (let i = 0; i < N; i++) twilio.validateRequest('tok', sig2, url2, params);
console.log('validate (https url)', ((performance.now() - t) / N * 1000).toFixed(1), 'µs');
