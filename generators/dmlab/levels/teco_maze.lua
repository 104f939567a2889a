--[[ teco_maze: DMLab-40k mazes for a stock DeepMind Lab build (teco-worlds, Apache-2.0).

Written for teco-worlds from the behaviour documented in generators/dmlab/PROTOCOL.md; it shares no code
with DeepMind Lab's demos/random_maze. Each episode (seeded by Lab.reset(seed=...)) builds:

  * a (mazeSize + 2)^2 grid (9x9 by default) with a solid outer wall, carved depth-first between the
    junction cells (even 1-based rows and columns) from a random junction, thick walls;
  * every interior cell opened with probability openFraction (0.15) to make loops;
  * one texture variation per quadrant ('.', 'A', 'B', 'C');
  * one spawn 'P', drawn uniformly among the cells more than spawnMinSteps (5) BFS steps from a random
    junction. A maze without such a cell is redrawn from the same random stream, so an episode's seed
    always yields a maze that can host it.

No goal, apples or other pickups. The layout is published with debug_observations.setMaze, so
DEBUG.MAZE.LAYOUT and DEBUG.MAZE.VARIATION carry it (stock demos/random_maze never publishes it).

Load it with the `levelDirectory` setting (an absolute path to this folder) and the level name
'teco_maze', or pass the absolute path of this file (ending in .lua) as the level name.
Settings (all strings, via Lab's config): mazeSize, openFraction, spawnMinSteps, maxRedraws,
episodeLengthSeconds.
]]

local maze_generation = require 'dmlab.system.maze_generation'
local random = require 'common.random'
local make_map = require 'common.make_map'
local debug_observations = require 'decorators.debug_observations'
local custom_observations = require 'decorators.custom_observations'
local setting_overrides = require 'decorators.setting_overrides'

local STEPS = {{-2, 0}, {0, -2}, {2, 0}, {0, 2}}
local NEIGHBOURS = {{-1, 0}, {1, 0}, {0, -1}, {0, 1}}
local VARIATIONS = {'.', 'A', 'B', 'C'}

local api = {}
local params = {
    mazeSize = 7,
    openFraction = 0.15,
    spawnMinSteps = 5,
    maxRedraws = 64,
    episodeLengthSeconds = 3 * 60,
    camera = {750, 750, 750},
}

-- A random junction index in 1..n: one of 2, 4, ..., n - 1.
local function randomJunction(n)
  return 2 * random:uniformInt(1, (n - 1) / 2)
end

-- open[r][c] == true for floor cells of an n x n grid.
local function carveMaze(n, openFraction)
  local open = {}
  for r = 1, n do
    open[r] = {}
    for c = 1, n do
      open[r][c] = false
    end
  end
  local stack = {{randomJunction(n), randomJunction(n)}}
  open[stack[1][1]][stack[1][2]] = true
  while #stack > 0 do
    local r, c = stack[#stack][1], stack[#stack][2]
    local options = {}
    for _, d in ipairs(STEPS) do
      local rr, cc = r + d[1], c + d[2]
      if rr > 1 and rr < n and cc > 1 and cc < n and not open[rr][cc] then
        options[#options + 1] = d
      end
    end
    if #options == 0 then
      stack[#stack] = nil
    else
      local d = options[random:uniformInt(1, #options)]
      open[r + d[1] / 2][c + d[2] / 2] = true
      open[r + d[1]][c + d[2]] = true
      stack[#stack + 1] = {r + d[1], c + d[2]}
    end
  end
  for r = 2, n - 1 do
    for c = 2, n - 1 do
      if random:uniformReal(0, 1) < openFraction then
        open[r][c] = true
      end
    end
  end
  return open
end

-- BFS steps from (r0, c0) over 4-connected floor cells; nil where unreachable.
local function distances(open, n, r0, c0)
  local dist = {}
  for r = 1, n do
    dist[r] = {}
  end
  dist[r0][c0] = 0
  local queue, head = {{r0, c0}}, 1
  while head <= #queue do
    local r, c = queue[head][1], queue[head][2]
    head = head + 1
    for _, d in ipairs(NEIGHBOURS) do
      local rr, cc = r + d[1], c + d[2]
      if rr >= 1 and rr <= n and cc >= 1 and cc <= n and open[rr][cc] and dist[rr][cc] == nil then
        dist[rr][cc] = dist[r][c] + 1
        queue[#queue + 1] = {rr, cc}
      end
    end
  end
  return dist
end

-- A uniform pick among the cells more than minSteps from a random junction (row-major order), or nil.
local function pickSpawn(open, n, minSteps)
  local dist = distances(open, n, randomJunction(n), randomJunction(n))
  local cells = {}
  for r = 1, n do
    for c = 1, n do
      if dist[r][c] ~= nil and dist[r][c] > minSteps then
        cells[#cells + 1] = {r, c}
      end
    end
  end
  if #cells == 0 then
    return nil
  end
  return cells[random:uniformInt(1, #cells)]
end

local function layers(open, n, spawn)
  local entity, variations = {}, {}
  for r = 1, n do
    local eRow, vRow = {}, {}
    for c = 1, n do
      if r == spawn[1] and c == spawn[2] then
        eRow[c] = 'P'
      else
        eRow[c] = open[r][c] and ' ' or '*'
      end
      vRow[c] = VARIATIONS[1 + (r > n / 2 and 1 or 0) + (c > n / 2 and 2 or 0)]
    end
    entity[r] = table.concat(eRow)
    variations[r] = table.concat(vRow)
  end
  return table.concat(entity, '\n') .. '\n', table.concat(variations, '\n') .. '\n'
end

function api:start(episode, seed)
  random:seed(seed)
  local size = params.mazeSize
  assert(size >= 5 and size % 2 == 1, 'mazeSize must be odd and >= 5')
  local n = size + 2
  for _ = 1, params.maxRedraws do
    local open = carveMaze(n, params.openFraction)
    local spawn = pickSpawn(open, n, params.spawnMinSteps)
    if spawn ~= nil then
      local entity, variations = layers(open, n, spawn)
      local maze = maze_generation.mazeGeneration{entity = entity, variations = variations}
      api._mapName = make_map.makeMap{
          mapName = 'teco_maze',
          mapEntityLayer = entity,
          mapVariationsLayer = variations,
      }
      debug_observations.setMaze(maze)
      return
    end
  end
  error('teco_maze: no maze could host an episode in ' .. params.maxRedraws .. ' draws')
end

function api:nextMap()
  return api._mapName
end

custom_observations.decorate(api)
setting_overrides.decorate{
    api = api,
    apiParams = params,
    decorateWithTimeout = true,
}

return api
