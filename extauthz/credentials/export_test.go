package credentials

// PrivateRedis starts a redis-server of the test's own (see privateRedis).
var PrivateRedis = privateRedis
