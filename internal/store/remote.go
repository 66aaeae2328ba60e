package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
	"gocloud.dev/gcp"
)

// EnvAddressing overrides the S3 addressing style: "path" or "virtual".
const EnvAddressing = "DISTILL_S3_ADDRESSING"

// buckets caches open buckets by scheme://bucket for the life of the
// process: opening one loads the SDK's configuration and credentials.
var buckets struct {
	sync.Mutex
	m map[string]*blob.Bucket
}

// bucket returns the open bucket of l.
func bucket(ctx context.Context, l Loc) (*blob.Bucket, error) {
	id := l.Scheme + "://" + l.Bucket
	buckets.Lock()
	defer buckets.Unlock()
	if b, ok := buckets.m[id]; ok {
		return b, nil
	}
	var b *blob.Bucket
	var err error
	switch l.Scheme {
	case "s3":
		b, err = openS3(ctx, l.Bucket)
	case "gs":
		b, err = openGCS(ctx, l.Bucket)
	default:
		err = fmt.Errorf("unknown scheme %q", l.Scheme)
	}
	if err != nil {
		return nil, describe(l.String(), err)
	}
	if buckets.m == nil {
		buckets.m = map[string]*blob.Bucket{}
	}
	buckets.m[id] = b
	return b, nil
}

// customEndpoint returns the S3 endpoint set in the environment, if any.
func customEndpoint() string {
	for _, k := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

func openS3(ctx context.Context, name string) (*blob.Bucket, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration: %w", err)
	}
	endpoint := customEndpoint()
	if cfg.BaseEndpoint != nil && endpoint == "" {
		endpoint = *cfg.BaseEndpoint
	}
	if cfg.Region == "" {
		if endpoint == "" {
			return nil, errors.New("no AWS region: set AWS_REGION (or region in the AWS_PROFILE's config)")
		}
		cfg.Region = "us-east-1"
	}
	pathStyle := endpoint != ""
	switch v := os.Getenv(EnvAddressing); v {
	case "":
	case "path":
		pathStyle = true
	case "virtual":
		pathStyle = false
	default:
		return nil, fmt.Errorf("%s=%q: want path or virtual", EnvAddressing, v)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle })
	return s3blob.OpenBucket(ctx, client, name, &s3blob.Options{RequestChecksumCalculation: cfg.RequestChecksumCalculation})
}

func openGCS(ctx context.Context, name string) (*blob.Bucket, error) {
	if os.Getenv("STORAGE_EMULATOR_HOST") != "" {
		// The GCS client's standard emulator variable: no credentials,
		// gcsblob talks plain HTTP to it.
		return gcsblob.OpenBucket(ctx, &gcp.HTTPClient{Client: *http.DefaultClient}, name, nil)
	}
	creds, err := gcp.DefaultCredentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoCredentials, err)
	}
	client, err := gcp.NewHTTPClient(gcp.DefaultTransport(), gcp.CredentialsTokenSource(creds))
	if err != nil {
		return nil, err
	}
	return gcsblob.OpenBucket(ctx, client, name, nil)
}

// errNoCredentials marks a failure to find credentials in the chain.
var errNoCredentials = errors.New("no credentials")

// ErrExist is wrapped by the error of a create-only write (CreateNew) whose
// target exists. It is fs.ErrExist.
var ErrExist = fs.ErrExist

// describe turns the error of a call on location loc into one line that
// names the cause and the fix; not-found wraps fs.ErrNotExist and a failed
// create-only condition wraps ErrExist.
func describe(loc string, err error) error {
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var netErr *net.OpError
	var dnsErr *net.DNSError
	msg := err.Error()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", loc, fs.ErrNotExist)
	case errors.Is(err, errNoCredentials) || strings.Contains(msg, "failed to retrieve credentials") ||
		strings.Contains(msg, "could not find default credentials") || strings.Contains(msg, "no EC2 IMDS role found") ||
		strings.Contains(msg, "NoCredentialProviders") || strings.Contains(msg, "anonymous credentials"):
		if strings.HasPrefix(loc, "gs://") {
			return fmt.Errorf("%s: no Google Cloud credentials found; set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run with a service account on GCP, or run gcloud auth application-default login", loc)
		}
		return fmt.Errorf("%s: no credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a web identity / instance role", loc)
	case code == "NoSuchBucket" || strings.Contains(msg, "NoSuchBucket") || strings.Contains(msg, "bucket doesn't exist"):
		l, _ := Parse(loc)
		return fmt.Errorf("%s: bucket %q does not exist%s; create it or fix the location", loc, l.Bucket, endpointNote())
	case code == "AccessDenied" || code == "Forbidden" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
		gcerrors.Code(err) == gcerrors.PermissionDenied:
		why := "access denied"
		if code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" {
			why = "the credentials were refused (" + code + ")"
		}
		return fmt.Errorf("%s: %s; check that the credentials may list, read and write this bucket and prefix", loc, why)
	case gcerrors.Code(err) == gcerrors.FailedPrecondition || code == "PreconditionFailed":
		return fmt.Errorf("%s: %w", loc, ErrExist)
	case gcerrors.Code(err) == gcerrors.NotFound || code == "NoSuchKey" || code == "NotFound":
		return fmt.Errorf("%s: %w", loc, fs.ErrNotExist)
	case errors.As(err, &dnsErr) || errors.As(err, &netErr) || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "no such host") || strings.Contains(msg, "i/o timeout"):
		return fmt.Errorf("%s: cannot reach the storage endpoint%s: %s; check the network and AWS_ENDPOINT_URL", loc, endpointNote(), rootCause(err))
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", loc, context.Canceled)
	}
	return fmt.Errorf("%s: %s", loc, rootCause(err))
}

func endpointNote() string {
	if e := customEndpoint(); e != "" {
		return " at " + e
	}
	return ""
}

// rootCause returns the innermost message of err's chain, which for SDK
// errors is the part that names the cause.
func rootCause(err error) string {
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return netErr.Err.Error()
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if m := apiErr.ErrorMessage(); m != "" {
			return apiErr.ErrorCode() + ": " + m
		}
		return apiErr.ErrorCode()
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// ResetBuckets forgets the open buckets, so that the next use opens them
// again with the environment of that moment (tests that change it).
func ResetBuckets() {
	buckets.Lock()
	defer buckets.Unlock()
	for _, b := range buckets.m {
		b.Close()
	}
	buckets.m = nil
}
