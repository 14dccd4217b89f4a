package storetest

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// OnCommand is a go-redis hook that calls fn with every command the client sends, pipelined ones
// included, before it is sent: a test counts or records what a store method costs in commands.
type OnCommand func(redis.Cmder)

var _ redis.Hook = OnCommand(nil)

// DialHook leaves dialling alone.
func (f OnCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook calls f with the command.
func (f OnCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		f(c)
		return next(ctx, c)
	}
}

// ProcessPipelineHook calls f with each command of the pipeline.
func (f OnCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cs []redis.Cmder) error {
		for _, c := range cs {
			f(c)
		}
		return next(ctx, cs)
	}
}
