-- wrk script for bench/gateway: POST a message to the bench group, with the token.
wrk.method = "POST"
wrk.path = "/api/v1/groups/bench/messages"
wrk.body = '{"text":"bench message"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
