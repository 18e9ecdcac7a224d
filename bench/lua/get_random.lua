-- GET /v1/tasks/t<1..N> at random; N and the key come from the environment.
local n = tonumber(os.getenv("TASKS") or "10000")
local auth = "Bearer " .. os.getenv("KEY")
-- Each wrk thread has its own Lua state: seeding them all with os.time() alone would give
-- every thread the same sequence of ids, so they would hit the same task at the same moment.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + thread_no)
end
request = function()
  return wrk.format("GET", "/v1/tasks/t" .. math.random(1, n), { ["Authorization"] = auth })
end
