package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
)

// Lifecycle action results.
const (
	ResultContinue = "CONTINUE"
	ResultAbandon  = "ABANDON"
)

// hookCallTimeout bounds one Auto Scaling API call (the SDK's own retries
// included).
const hookCallTimeout = 20 * time.Second

// Hooks is the Auto Scaling API as the job uses it: the group and the
// instance are fixed, the hook and the result vary.
type Hooks interface {
	Complete(ctx context.Context, hook, result string) error
	Heartbeat(ctx context.Context, hook string) error
}

// ASG calls the Auto Scaling API for one instance of one group, with the
// SDK's default credentials (the instance role on EC2).
type ASG struct {
	Client     *autoscaling.Client
	Group      string
	InstanceID string
}

// ASGSettings build an ASG.
type ASGSettings struct {
	Group, Region string
	// Endpoint overrides the API's URL (tests); "" is AWS's.
	Endpoint string
}

// NewASG builds the client. It makes no call: credentials are resolved at
// the first request.
func NewASG(ctx context.Context, s ASGSettings, instanceID string) (*ASG, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(s.Region))
	if err != nil {
		return nil, fmt.Errorf("load the AWS SDK configuration for the Auto Scaling API: %w", err)
	}
	client := autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) {
		if s.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.Endpoint)
		}
	})
	return &ASG{Client: client, Group: s.Group, InstanceID: instanceID}, nil
}

// Complete calls CompleteLifecycleAction.
func (a *ASG) Complete(ctx context.Context, hook, result string) error {
	ctx, cancel := context.WithTimeout(ctx, hookCallTimeout)
	defer cancel()
	_, err := a.Client.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName:  aws.String(a.Group),
		LifecycleHookName:     aws.String(hook),
		InstanceId:            aws.String(a.InstanceID),
		LifecycleActionResult: aws.String(result),
	})
	return a.wrap("CompleteLifecycleAction", hook, err)
}

// Heartbeat calls RecordLifecycleActionHeartbeat.
func (a *ASG) Heartbeat(ctx context.Context, hook string) error {
	ctx, cancel := context.WithTimeout(ctx, hookCallTimeout)
	defer cancel()
	_, err := a.Client.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String(a.Group),
		LifecycleHookName:    aws.String(hook),
		InstanceId:           aws.String(a.InstanceID),
	})
	return a.wrap("RecordLifecycleActionHeartbeat", hook, err)
}

func (a *ASG) wrap(op, hook string, err error) error {
	if err == nil {
		return nil
	}
	return &HookError{Op: op, Hook: hook, Group: a.Group, Instance: a.InstanceID, Kind: classify(err), Err: err}
}

// HookErrorKind sorts the API's failures by what fixes them.
type HookErrorKind string

// Kinds of hook errors.
const (
	// HookNoAction: no lifecycle action is pending for the instance (the
	// hook completed already, timed out, or the instance came before the
	// hook): nothing left to complete.
	HookNoAction HookErrorKind = "no-action"
	// HookInvalid: the API refused the request (ValidationError): a hook
	// or group name that does not exist.
	HookInvalid HookErrorKind = "invalid"
	// HookDenied: the instance role may not call the API.
	HookDenied HookErrorKind = "denied"
	// HookUnreachable: no answer (network, DNS, endpoint).
	HookUnreachable HookErrorKind = "unreachable"
	// HookOther: anything else (throttling past the SDK's retries, a 5xx).
	HookOther HookErrorKind = "other"
)

// HookError is a failed Auto Scaling call, sorted by its fix.
type HookError struct {
	Op, Hook, Group, Instance string
	Kind                      HookErrorKind
	Err                       error
}

func (e *HookError) Error() string {
	return fmt.Sprintf("%s for hook %q of group %q (instance %s): %v", e.Op, e.Hook, e.Group, e.Instance, e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }

// Fix says what the operator does about it.
func (e *HookError) Fix() string {
	switch e.Kind {
	case HookNoAction:
		return "nothing to do: no lifecycle action is pending for this instance (completed already, timed out, or the instance started before the hook existed)"
	case HookInvalid:
		return fmt.Sprintf("check fleet.autoScaling.group (%q) and the hook name (%q) against `aws autoscaling describe-lifecycle-hooks --auto-scaling-group-name %s`",
			e.Group, e.Hook, e.Group)
	case HookDenied:
		return "give the instance role autoscaling:CompleteLifecycleAction and autoscaling:RecordLifecycleActionHeartbeat on the group (docs/deploy-aws.md, IAM policy)"
	case HookUnreachable:
		return "the instance cannot reach the Auto Scaling API: check the route to autoscaling.<region>.amazonaws.com (NAT, VPC endpoint, security group) and fleet.autoScaling.endpoint; the agent retries"
	}
	return "the agent retries each round; see the message"
}

func classify(err error) HookErrorKind {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch code := api.ErrorCode(); {
		case code == "ValidationError" && strings.Contains(api.ErrorMessage(), "No active Lifecycle Action"):
			return HookNoAction
		case code == "ValidationError":
			return HookInvalid
		case code == "AccessDenied", code == "AccessDeniedException", code == "UnauthorizedOperation",
			code == "InvalidClientTokenId", code == "SignatureDoesNotMatch", code == "ExpiredToken":
			return HookDenied
		}
		return HookOther
	}
	var nerr net.Error
	var operr *net.OpError
	var dnserr *net.DNSError
	if errors.As(err, &operr) || errors.As(err, &dnserr) || (errors.As(err, &nerr) && nerr.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		return HookUnreachable
	}
	return HookOther
}
