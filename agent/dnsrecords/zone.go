package dnsrecords

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/problem"
)

// Store is where the record sets live: Route 53 (NewRoute53), or a fake.
type Store interface {
	// List returns the record sets at and under the domain, normalized.
	List(ctx context.Context) ([]RecordSet, error)
	// Apply makes the changes in one batch: all or none.
	Apply(ctx context.Context, comment string, changes []Change) error
}

// Route53 is a hosted zone in Route 53.
type Route53 struct {
	client *route53.Client
	zoneID string
	zone   Zone
}

// NewRoute53 builds the client for cfg. Credentials and region come the
// SDK's usual way (on EC2 the instance role through IMDS); it does not touch
// the network. Throttling and server errors are retried by the SDK's
// retryer (capped exponential backoff with jitter).
func NewRoute53(ctx context.Context, cfg config.Route53) (*Route53, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("route53: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1" // Route 53 is global; its requests sign for us-east-1
	}
	client := route53.NewFromConfig(awsCfg, func(o *route53.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Route53{client: client, zoneID: cfg.HostedZoneID, zone: ZoneOf(cfg)}, nil
}

// ZoneOf is the planner's view of cfg.
func ZoneOf(cfg config.Route53) Zone {
	return Zone{Domain: cfg.Domain, TTL: int64(cfg.TTL.D().Seconds())}
}

// List implements Store: Route 53 lists a zone in the order of the names'
// labels read right to left, so the names at and under the domain come
// together, starting at the domain. Alias, weighted and other routed record
// sets are not the agents' and are left out.
func (r *Route53) List(ctx context.Context) ([]RecordSet, error) {
	domain := fqdn(r.zone.Domain)
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(r.zoneID), StartRecordName: aws.String(domain)}
	var out []RecordSet
	for {
		resp, err := r.client.ListResourceRecordSets(ctx, in)
		if err != nil {
			return nil, classify("list the records under "+domain, err)
		}
		for _, s := range resp.ResourceRecordSets {
			name := strings.ToLower(fqdn(aws.ToString(s.Name)))
			if name != domain && !strings.HasSuffix(name, "."+domain) {
				return out, nil // past the domain
			}
			if s.AliasTarget != nil || s.SetIdentifier != nil {
				continue
			}
			set := RecordSet{Name: name, Type: string(s.Type), TTL: aws.ToInt64(s.TTL)}
			for _, v := range s.ResourceRecords {
				set.Values = append(set.Values, aws.ToString(v.Value))
			}
			out = append(out, Normalize(set))
		}
		if !resp.IsTruncated {
			return out, nil
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = resp.NextRecordName, resp.NextRecordType, resp.NextRecordIdentifier
	}
}

// Apply implements Store with one ChangeResourceRecordSets call (Route 53
// applies a batch atomically). No changes: no call.
func (r *Route53) Apply(ctx context.Context, comment string, changes []Change) error {
	if len(changes) == 0 {
		return nil
	}
	batch := &types.ChangeBatch{Comment: aws.String(comment)}
	for _, c := range changes {
		set := &types.ResourceRecordSet{Name: aws.String(c.Set.Name), Type: types.RRType(c.Set.Type), TTL: aws.Int64(c.Set.TTL)}
		for _, v := range c.Set.Values {
			set.ResourceRecords = append(set.ResourceRecords, types.ResourceRecord{Value: aws.String(v)})
		}
		batch.Changes = append(batch.Changes, types.Change{Action: types.ChangeAction(c.Action), ResourceRecordSet: set})
	}
	_, err := r.client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(r.zoneID), ChangeBatch: batch})
	if err != nil {
		return classify(fmt.Sprintf("change %d record sets", len(changes)), err)
	}
	return nil
}

// Error is a failed Route 53 call with the problem it is shown as.
type Error struct {
	Kind problem.Kind
	Op   string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("route53: %s: %v", e.Op, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Problem is e as status shows it.
func (e *Error) Problem() problem.Problem { return e.Kind.New("", e.Error()) }

// classify names the problem of a failed call by Route 53's error code.
// Its message keeps Route 53's code and words, not the SDK's request ID,
// which changes with each attempt: the same refusal reads the same.
func classify(op string, err error) error {
	kind := problem.DNSRecordsFailed
	var api smithy.APIError
	if !errors.As(err, &api) {
		return &Error{Kind: kind, Op: op, Err: err}
	}
	switch api.ErrorCode() {
	case "NoSuchHostedZone":
		kind = problem.DNSZoneMissing
	case "AccessDenied", "AccessDeniedException":
		kind = problem.DNSAccessDenied
	case "InvalidChangeBatch":
		kind = problem.DNSChangeRefused
	}
	msg := api.ErrorMessage()
	var batch *types.InvalidChangeBatch
	if errors.As(err, &batch) && len(batch.Messages) > 0 {
		// The SDK's message is generic; Route 53's say which record.
		msg = strings.Join(batch.Messages, "; ")
	}
	return &Error{Kind: kind, Op: op, Err: &apiError{code: api.ErrorCode(), msg: msg, err: err}}
}

// apiError is a Route 53 error told by its code and message.
type apiError struct {
	code, msg string
	err       error
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }
func (e *apiError) Unwrap() error { return e.err }
