using Payments;
using Payments.Demo;

if (args is ["demo", ..])
{
    var report = await RetryStormDemo.RunAsync(Console.Out);
    return report.Succeeded ? 0 : 1;
}

await PaymentsApp.Build(args).RunAsync();
return 0;
