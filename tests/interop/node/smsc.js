// A small SMSC built on the node `smpp` package (0.5.1), for Pigeon's interop tests.
//
// Usage: node smsc.js SYSTEM_ID PASSWORD
// Listens on 127.0.0.1 (a free port), prints `listening PORT` on stdout, then one JSON line
// per submit_sm it accepted: {"message_id", "destination", "data_coding", "esm_class",
// "udh" (hex or ""), "text"}. Binds are checked against SYSTEM_ID / PASSWORD (a wrong password
// gets ESME_RINVPASWD). Each submit_sm is answered with a hex message id; when a receipt is
// requested, a deliver_sm receipt for that id follows 20 ms later.
'use strict';

const smpp = require('smpp');

const [systemId, password] = process.argv.slice(2);
let nextId = 0x5eed0000;

function pad(n) {
	return String(n).padStart(2, '0');
}

function smppDate(d) {
	return pad(d.getUTCFullYear() % 100) + pad(d.getUTCMonth() + 1) + pad(d.getUTCDate()) +
		pad(d.getUTCHours()) + pad(d.getUTCMinutes());
}

const server = smpp.createServer({debug: false}, function (session) {
	let bound = false;
	function onBind(pdu) {
		if (pdu.system_id !== systemId) {
			session.send(pdu.response({command_status: smpp.ESME_RINVSYSID}));
			session.close();
			return;
		}
		if (pdu.password !== password) {
			session.send(pdu.response({command_status: smpp.ESME_RINVPASWD}));
			session.close();
			return;
		}
		bound = true;
		session.send(pdu.response({system_id: 'node-smsc'}));
	}
	session.on('bind_transceiver', onBind);
	session.on('bind_transmitter', onBind);
	session.on('bind_receiver', onBind);
	session.on('enquire_link', function (pdu) {
		session.send(pdu.response());
	});
	session.on('unbind', function (pdu) {
		session.send(pdu.response());
		session.close();
	});
	session.on('submit_sm', function (pdu) {
		if (!bound) {
			session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
			return;
		}
		const messageId = (nextId++).toString(16);
		const sm = pdu.short_message || {};
		const record = {
			message_id: messageId,
			destination: pdu.destination_addr,
			data_coding: pdu.data_coding,
			esm_class: pdu.esm_class,
			udh: sm.udh ? Buffer.concat(sm.udh).toString('hex') : '',
			text: typeof sm.message === 'string' ? sm.message : String(sm.message || ''),
		};
		process.stdout.write(JSON.stringify(record) + '\n');
		session.send(pdu.response({message_id: messageId}));
		if (pdu.registered_delivery & 0x01) {
			setTimeout(function () {
				const now = smppDate(new Date());
				session.deliver_sm({
					source_addr: pdu.destination_addr,
					destination_addr: pdu.source_addr,
					esm_class: 0x04,
					short_message: 'id:' + messageId + ' sub:001 dlvrd:001 submit date:' + now +
						' done date:' + now + ' stat:DELIVRD err:000 text:',
					receipted_message_id: messageId,
					message_state: 2,
				});
			}, 20);
		}
	});
	session.on('error', function () {});
});

server.listen(0, '127.0.0.1', function () {
	process.stdout.write('listening ' + server.address().port + '\n');
});
