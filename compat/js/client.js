// kafkajs driver for floodgate's compatibility suite (compat/kafkajs_test.go).
//
//   node client.js create   BROKER TOPIC PARTITIONS
//   node client.js produce  BROKER TOPIC            < values, one a line
//   node client.js consume  BROKER GROUP TOPIC CLIENT_ID
//       prints "PARTITION OFFSET VALUE" per message; SIGTERM commits, leaves
//       the group and exits 0
//   node client.js groups   BROKER GROUP
//       prints {listed, described} as JSON (assignments decoded)
//
// kafkajs logs go to stderr; stdout carries only the results above.
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel, AssignerProtocol } = require('kafkajs')

const [mode, broker, ...args] = process.argv.slice(2)

const logCreator = () => ({ namespace, label, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`[kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`)
}

function kafka(clientId) {
  return new Kafka({
    clientId,
    brokers: [broker],
    logLevel: logLevel.WARN,
    logCreator,
    connectionTimeout: 5000,
    retry: { initialRetryTime: 100, retries: 8 },
  })
}

async function readStdin() {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  return Buffer.concat(chunks).toString('utf8').split('\n').filter(l => l.length > 0)
}

async function create(topic, partitions) {
  const admin = kafka('compat-kafkajs-admin').admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: Number(partitions), replicationFactor: 1 }],
      waitForLeaders: true,
    })
    if (!created) throw new Error(`topic ${topic} already existed`)
  } finally {
    await admin.disconnect()
  }
}

async function produce(topic) {
  const values = await readStdin()
  const producer = kafka('compat-kafkajs-producer').producer()
  await producer.connect()
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: values.map((value, i) => ({ key: `k${i}`, value })),
    })
  } finally {
    await producer.disconnect()
  }
}

async function consume(group, topic, clientId) {
  const consumer = kafka(clientId).consumer({
    groupId: group,
    sessionTimeout: 6000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 300,
    maxWaitTimeInMs: 300,
    retry: { initialRetryTime: 100, retries: 8 },
  })
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    try {
      await consumer.disconnect() // commits resolved offsets, leaves the group
      process.exit(0)
    } catch (e) {
      process.stderr.write(`disconnect: ${e.stack}\n`)
      process.exit(1)
    }
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    process.stderr.write(`consumer crashed: ${payload.error && payload.error.stack}\n`)
    if (!payload.restart) process.exit(2)
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      process.stdout.write(`${partition} ${message.offset} ${message.value.toString()}\n`)
    },
  })
}

async function groups(group) {
  const admin = kafka('compat-kafkajs-admin').admin()
  await admin.connect()
  try {
    const listed = await admin.listGroups()
    const described = await admin.describeGroups([group])
    for (const g of described.groups) {
      for (const m of g.members) {
        const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
        m.memberAssignment = a ? a.assignment : null
        delete m.memberMetadata
      }
    }
    process.stdout.write(JSON.stringify({ listed, described }) + '\n')
  } finally {
    await admin.disconnect()
  }
}

const modes = {
  create: () => create(args[0], args[1]),
  produce: () => produce(args[0]),
  consume: () => consume(args[0], args[1], args[2]),
  groups: () => groups(args[0]),
}

if (!modes[mode] || !broker) {
  process.stderr.write('usage: node client.js create|produce|consume|groups BROKER ...\n')
  process.exit(64)
}
modes[mode]().catch(e => {
  process.stderr.write(`${mode} failed: ${e.stack}\n`)
  process.exit(1)
})
