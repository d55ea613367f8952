return await Oncely.Check.CheckCommand.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);
